"""Deploy a SAM application into moto and run it: `deploy()` returns a running `LocalStack`."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from notifyctl.local import cfn_resources, moto_internals
from notifyctl.local.artifacts import bucket_name, local_uris, upload_artifacts
from notifyctl.local.aws import AwsClients
from notifyctl.local.clock import Clock, RealClock
from notifyctl.local.emf import MetricDatum
from notifyctl.local.eventbridge import Tap, install_taps
from notifyctl.local.functions import Function, FunctionSpec, Invocation, LocalFunction
from notifyctl.local.pollers import AsyncInvokePoller, Poller, SqsEventSourcePoller
from notifyctl.local.scheduler import LocalScheduler
from notifyctl.local.ses_mailbox import SesMailboxSimulator

log = logging.getLogger(__name__)

DEFAULT_ASYNC_RETRY_DELAYS = (1.0, 2.0)
# "process": every function in worker processes, mappings at their MaximumConcurrency (the
# Lambda-like runtime). "in-process": one thread, shared sys.modules, one batch at a time
# (the fast mode for tests of handler logic). docs/local-runtime.md says what each proves.
Isolation = Literal["process", "in-process"]
_PUT_METRIC_DATA_LIMIT = 500
_VISIBILITY_EPSILON = 0.002


class DeployError(RuntimeError):
    """The stack could not be created in moto."""


class DrainLimitExceeded(RuntimeError):
    """`drain` hit its bound before the queues were quiescent."""


class TemplateTranslator(Protocol):
    def load_template(self, path: Path) -> dict[str, Any]: ...

    def translate(
        self,
        template: dict[str, Any],
        parameters: dict[str, str],
        code_locations: Mapping[str, tuple[str, str]] | None = None,
    ) -> dict[str, Any]: ...


class SamTranslator:
    """The project's SAM translation (`notifyctl.local.translate`), imported on first use."""

    def load_template(self, path: Path) -> dict[str, Any]:
        from notifyctl.local import translate

        return translate.load_template(path)

    def translate(
        self,
        template: dict[str, Any],
        parameters: dict[str, str],
        code_locations: Mapping[str, tuple[str, str]] | None = None,
    ) -> dict[str, Any]:
        from notifyctl.local import translate

        return translate.translate(template, parameters, code_locations)


@dataclass(frozen=True)
class StackResource:
    logical_id: str
    resource_type: str
    physical_id: str


@dataclass(frozen=True)
class LogRecord:
    """A line a function printed that was not an EMF metric document."""

    function: str
    request_id: str
    line: str


@dataclass(frozen=True)
class QueueDepth:
    queue_name: str
    visible: int
    in_flight: int
    delayed: int

    @property
    def empty(self) -> bool:
        return self.visible == 0 and self.in_flight == 0 and self.delayed == 0


@dataclass(frozen=True)
class DrainResult:
    rounds: int
    records: int
    seconds_advanced: float
    quiescent: bool


@dataclass
class LocalStack:
    """A SAM application deployed in moto, with its functions run in-process."""

    stack_name: str
    clients: AwsClients
    clock: Clock
    account_id: str
    outputs: dict[str, str]
    resources: dict[str, StackResource]
    functions: dict[str, Function] = field(default_factory=dict)
    pollers: list[Poller] = field(default_factory=list)
    taps: list[Tap] = field(default_factory=list)
    logs: list[LogRecord] = field(default_factory=list)
    metrics: list[MetricDatum] = field(default_factory=list)
    echo_logs: bool = False
    scheduler: LocalScheduler | None = None
    # SES's mailbox simulator: feedback events for emails to its addresses (ses_mailbox.py).
    mailbox: SesMailboxSimulator | None = None
    isolation: Isolation = "in-process"
    _round_executor: ThreadPoolExecutor | None = None

    # -- lookups -------------------------------------------------------------------------------
    def physical_id(self, logical_id: str) -> str:
        return self.resources[logical_id].physical_id

    def queue_url(self, logical_id: str) -> str:
        name = self.physical_id(logical_id).rstrip("/").rsplit("/", 1)[-1]
        return self.clients.sqs.get_queue_url(QueueName=name)["QueueUrl"]

    def function(self, logical_id: str) -> Function:
        return self.functions[logical_id]

    @property
    def bus_name(self) -> str:
        buses = [r for r in self.resources.values() if r.resource_type == "AWS::Events::EventBus"]
        if len(buses) != 1:
            raise LookupError(f"expected one event bus in the stack, found {len(buses)}")
        return buses[0].physical_id.rsplit("/", 1)[-1]

    # -- running -------------------------------------------------------------------------------
    def publish(
        self,
        event_type: str,
        detail: Mapping[str, Any],
        source: str = "notifications.local",
        bus_name: str | None = None,
    ) -> str:
        """Put one event on the stack's bus; returns its event id."""
        response = self.clients.events.put_events(
            Entries=[
                {
                    "Source": source,
                    "DetailType": event_type,
                    "Detail": json.dumps(detail),
                    "EventBusName": bus_name or self.bus_name,
                }
            ]
        )
        entry = response["Entries"][0]
        if response.get("FailedEntryCount") or "EventId" not in entry:
            raise RuntimeError(f"put_events failed: {entry.get('ErrorCode')}")
        return entry["EventId"]

    def pump(self) -> int:
        """One round over every poller; returns how many records were handled."""
        moto_internals.detach_sqs_event_source_mappings(self.account_id, self.clients.region)
        if self.scheduler is not None:
            self.scheduler.fire_due()
        # Feedback events put on the bus count as handled: the drain goes on to deliver them.
        fed_back = self.mailbox.feed_back() if self.mailbox is not None else 0
        if self.isolation == "in-process" or len(self.pollers) < 2:
            return fed_back + sum(poller.poll_once() for poller in self.pollers)
        # Lambda polls every mapping at the same time: so do the pollers of one round.
        if self._round_executor is None:
            self._round_executor = ThreadPoolExecutor(
                max_workers=len(self.pollers), thread_name_prefix="local-round"
            )
        return fed_back + sum(
            self._round_executor.map(lambda poller: poller.poll_once(), self.pollers)
        )

    def close(self) -> None:
        """Stop the worker processes and threads (idempotent)."""
        if self._round_executor is not None:
            self._round_executor.shutdown(wait=True)
            self._round_executor = None
        for poller in self.pollers:
            poller.close()
        for function in self.functions.values():
            function.close()

    def __enter__(self) -> LocalStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def queue_depths(self) -> list[QueueDepth]:
        """Depth of each queue an active poller consumes."""
        depths: list[QueueDepth] = []
        for poller in self.pollers:
            if not poller.active:
                continue
            attributes = self.clients.sqs.get_queue_attributes(
                QueueUrl=poller.queue_url, AttributeNames=["All"]
            )["Attributes"]
            depths.append(
                QueueDepth(
                    queue_name=poller.queue_name,
                    visible=int(attributes.get("ApproximateNumberOfMessages", 0)),
                    in_flight=int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
                    delayed=int(attributes.get("ApproximateNumberOfMessagesDelayed", 0)),
                )
            )
        return depths

    def drain(
        self,
        max_rounds: int = 10_000,
        until: Callable[[], bool] | None = None,
        max_seconds: float | None = None,
        idle_step: float = 0.05,
        on_round: Callable[[int], None] | None = None,
    ) -> DrainResult:
        """Run rounds until every actively polled queue is empty, or `until()` holds.

        When nothing is visible but messages are in flight or delayed, the clock moves to the
        next moment one becomes visible (a controlled clock jumps; the real clock sleeps).
        Queues of disabled mappings are not waited for. Raises `DrainLimitExceeded` when
        `max_rounds` rounds or `max_seconds` of clock time pass first. `on_round` is called
        after every round with the records handled so far (progress display).
        """
        rounds = records = 0
        advanced = 0.0
        while True:
            if until is not None and until():
                return DrainResult(rounds, records, advanced, quiescent=False)
            if rounds >= max_rounds or (max_seconds is not None and advanced > max_seconds):
                raise DrainLimitExceeded(self._drain_report(rounds, advanced))
            rounds += 1
            handled = self.pump()
            records += handled
            if on_round is not None:
                on_round(records)
            if handled:
                continue
            depths = self.queue_depths()
            if all(depth.empty for depth in depths):
                if until is None:
                    return DrainResult(rounds, records, advanced, quiescent=True)
                raise DrainLimitExceeded(
                    "queues are quiescent but the drain condition never held; "
                    + self._drain_report(rounds, advanced)
                )
            if any(depth.visible for depth in depths):
                continue
            wake = moto_internals.next_visibility_change(
                self.account_id, self.clients.region, [d.queue_name for d in depths]
            )
            step = idle_step if wake is None else max(wake - self.clock.now(), 0.0)
            step += _VISIBILITY_EPSILON
            self.clock.sleep(step)
            advanced += step

    def _drain_report(self, rounds: int, advanced: float) -> str:
        busy = [
            f"{d.queue_name} (visible={d.visible}, in_flight={d.in_flight}, delayed={d.delayed})"
            for d in self.queue_depths()
            if not d.empty
        ]
        return (
            f"drain stopped after {rounds} rounds and {advanced:.1f}s of clock time; "
            f"busy queues: {', '.join(busy) or 'none'}"
        )

    # -- observations from invocations -----------------------------------------------------------
    def record_invocation(self, spec: FunctionSpec, invocation: Invocation) -> None:
        for line in invocation.output.lines:
            self.logs.append(LogRecord(spec.logical_id, invocation.request_id, line))
            if self.echo_logs:
                print(f"[{spec.logical_id}] {line}", file=sys.stderr)
        if invocation.output.metrics:
            self.metrics.extend(invocation.output.metrics)
            self._put_metrics(invocation.output.metrics)

    def _put_metrics(self, data: Sequence[MetricDatum]) -> None:
        by_namespace: dict[str, list[MetricDatum]] = defaultdict(list)
        for datum in data:
            by_namespace[datum.namespace].append(datum)
        for namespace, items in by_namespace.items():
            for start in range(0, len(items), _PUT_METRIC_DATA_LIMIT):
                chunk = items[start : start + _PUT_METRIC_DATA_LIMIT]
                self.clients.cloudwatch.put_metric_data(
                    Namespace=namespace,
                    MetricData=[d.as_put_metric_data() for d in chunk],  # type: ignore[misc]
                )


# -- deploy ----------------------------------------------------------------------------------------


def deploy(
    template_path: Path,
    parameters: Mapping[str, str] | None = None,
    stack_name: str = "notifications-local",
    *,
    clock: Clock | None = None,
    clients: AwsClients | None = None,
    translator: TemplateTranslator | None = None,
    async_retry_delays: Sequence[float] = DEFAULT_ASYNC_RETRY_DELAYS,
    echo_logs: bool = False,
    isolation: Isolation = "in-process",
    concurrency: int | None = None,
) -> LocalStack:
    """Deploy the SAM template at `template_path` into the active moto and start its runtime.

    moto must already be active: `mock_aws` in-process, or a `ThreadedMotoServer` in this
    process reached through `AWS_ENDPOINT_URL`.

    `isolation="process"` runs each function in worker processes (it needs the moto server:
    workers reach it over HTTP) and each SQS mapping at its `ScalingConfig.MaximumConcurrency`,
    capped by `concurrency` (1 for a deterministic run). `"in-process"` runs one batch at a
    time in this process, whatever `concurrency` says.
    """
    template_path = Path(template_path).resolve()
    template_dir = template_path.parent
    clients = clients or AwsClients()
    endpoint_url = clients.endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or ""
    if isolation == "process" and not endpoint_url:
        raise DeployError(
            "isolation='process' needs moto server: start ThreadedMotoServer and set "
            "AWS_ENDPOINT_URL (worker processes cannot see mock_aws's in-process state)"
        )
    if concurrency is not None and concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    clock = clock or RealClock()
    translator = translator or SamTranslator()
    parameters = {k: str(v) for k, v in (parameters or {}).items()}

    sam_template = translator.load_template(template_path)
    uris = local_uris(sam_template)
    locations = upload_artifacts(clients, template_dir, uris.values(), bucket_name(stack_name))
    cfn_template = translator.translate(sam_template, dict(parameters), locations)

    declared = set((cfn_template.get("Parameters") or {}).keys())
    moto_internals.patch_event_bus_ref()
    moto_internals.patch_template_parsing()
    cfn_resources.register()  # AWS::Lambda::Url, AWS::SecretsManager::Secret, SES config set
    moto_internals.patch_transactions_item_level_rollback()
    moto_internals.patch_sqs_retention_check()  # before serialize_backends wraps it
    moto_internals.serialize_backends()
    moto_internals.patch_eventbridge_delivery()
    clients.cloudformation.create_stack(
        StackName=stack_name,
        TemplateBody=json.dumps(cfn_template),
        Parameters=[
            {"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items() if k in declared
        ],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    stack = clients.cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    if stack["StackStatus"] != "CREATE_COMPLETE":
        raise DeployError(f"stack {stack_name} is {stack['StackStatus']}")
    outputs = {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs", [])}
    resources = _stack_resources(clients, stack_name)
    account_id = clients.account_id

    local = LocalStack(
        stack_name=stack_name,
        clients=clients,
        clock=clock,
        account_id=account_id,
        outputs=outputs,
        resources=resources,
        echo_logs=echo_logs,
        isolation=isolation,
    )
    _apply_event_invoke_configs(clients, cfn_template, resources, parameters)
    local.functions = _load_functions(
        clients, clock, sam_template, cfn_template, resources, template_dir, local, endpoint_url
    )
    moto_internals.detach_sqs_event_source_mappings(account_id, clients.region)
    local.pollers.extend(
        _sqs_pollers(clients, local.functions, 1 if isolation == "in-process" else concurrency)
    )
    by_name = {f.spec.name: f for f in local.functions.values()}
    local.taps = install_taps(clients, stack_name, by_name)
    for tap in local.taps:
        local.pollers.append(
            AsyncInvokePoller(
                tap.queue_url,
                by_name[tap.function_name],
                clients,
                clock,
                async_retry_delays,
                rule_name=tap.rule_name,
                account_id=account_id,
                static_input=tap.static_input,
                rule_arn=tap.rule_arn,
                dead_letter_arn=tap.dead_letter_arn,
            )
        )
    local.scheduler = LocalScheduler.install(
        clients, clock, account_id, cfn_template, parameters, stack_name, local.taps
    )
    configuration_set = outputs.get("EmailConfigurationSetName")
    if configuration_set:
        local.mailbox = SesMailboxSimulator(clients, account_id, configuration_set, clock.now)
    return local


def _stack_resources(clients: AwsClients, stack_name: str) -> dict[str, StackResource]:
    resources: dict[str, StackResource] = {}
    kwargs: dict[str, Any] = {"StackName": stack_name}
    while True:
        response = clients.cloudformation.list_stack_resources(**kwargs)
        for summary in response["StackResourceSummaries"]:
            if not summary.get("LogicalResourceId"):
                continue  # moto lists resources its CloudFormation skipped with empty fields
            resources[summary["LogicalResourceId"]] = StackResource(
                summary["LogicalResourceId"],
                summary["ResourceType"],
                summary.get("PhysicalResourceId", ""),
            )
        if not response.get("NextToken"):
            return resources
        kwargs["NextToken"] = response["NextToken"]


def _load_functions(
    clients: AwsClients,
    clock: Clock,
    sam_template: dict[str, Any],
    cfn_template: dict[str, Any],
    resources: Mapping[str, StackResource],
    template_dir: Path,
    local: LocalStack,
    endpoint_url: str,
) -> dict[str, Function]:
    uris = local_uris(sam_template)
    layer_dirs = _layer_dirs(sam_template, cfn_template, template_dir, uris)
    functions: dict[str, Function] = {}
    for logical_id, resource in (cfn_template.get("Resources") or {}).items():
        if resource.get("Type") != "AWS::Lambda::Function":
            continue
        if logical_id not in uris:
            log.warning("function has no local code; not run", extra={"function": logical_id})
            continue
        config = clients.lambda_.get_function_configuration(
            FunctionName=resources[logical_id].physical_id
        )
        variables = (config.get("Environment") or {}).get("Variables") or {}
        spec = FunctionSpec(
            logical_id=logical_id,
            name=config["FunctionName"],
            arn=config["FunctionArn"],
            code_dir=(template_dir / uris[logical_id]).resolve(),
            handler=config["Handler"],
            layer_dirs=_function_layer_dirs(resource, layer_dirs),
            environment={k: str(v) for k, v in variables.items()},
            timeout_seconds=int(config.get("Timeout") or 3),
            memory_mb=int(config.get("MemorySize") or 128),
            runtime=str(config.get("Runtime") or "python3.12"),
        )
        if local.isolation == "process":
            from notifyctl.local.isolation import IsolatedFunction

            functions[logical_id] = IsolatedFunction(
                spec, clock, clients.region, endpoint_url, on_invocation=local.record_invocation
            )
        else:
            functions[logical_id] = LocalFunction(
                spec, clients.region, on_invocation=local.record_invocation
            )
    return functions


def _layer_dirs(
    sam_template: dict[str, Any],
    cfn_template: dict[str, Any],
    template_dir: Path,
    uris: Mapping[str, str],
) -> dict[str, Path]:
    """Translated layer logical id -> local import directory (`<ContentUri>/python` if any).

    SAM renames a layer `<LogicalId><10 hex digits>`; moto gives layer versions no physical
    id, so functions are matched to layers through the `Ref`s in their `Layers`.
    """
    sam_layers = [
        logical_id
        for logical_id, resource in (sam_template.get("Resources") or {}).items()
        if resource.get("Type") == "AWS::Serverless::LayerVersion" and logical_id in uris
    ]
    dirs: dict[str, Path] = {}
    for logical_id, resource in (cfn_template.get("Resources") or {}).items():
        if resource.get("Type") != "AWS::Lambda::LayerVersion":
            continue
        for sam_id in sam_layers:
            if logical_id == sam_id or re.fullmatch(
                re.escape(sam_id) + r"[0-9a-f]{10}", logical_id
            ):
                directory = (template_dir / uris[sam_id]).resolve()
                python_dir = directory / "python"
                dirs[logical_id] = python_dir if python_dir.is_dir() else directory
    return dirs


def _function_layer_dirs(
    resource: dict[str, Any], layer_dirs: Mapping[str, Path]
) -> tuple[Path, ...]:
    layers = (resource.get("Properties") or {}).get("Layers") or []
    refs = [layer.get("Ref") for layer in layers if isinstance(layer, dict)]
    return tuple(layer_dirs[ref] for ref in refs if isinstance(ref, str) and ref in layer_dirs)


def _sqs_pollers(
    clients: AwsClients, functions: Mapping[str, Function], concurrency: int | None
) -> list[SqsEventSourcePoller]:
    by_arn = {f.spec.arn: f for f in functions.values()}
    pollers: list[SqsEventSourcePoller] = []
    kwargs: dict[str, Any] = {}
    while True:
        response = clients.lambda_.list_event_source_mappings(**kwargs)
        for mapping in response.get("EventSourceMappings", []):
            function = by_arn.get(mapping.get("FunctionArn", ""))
            source = mapping.get("EventSourceArn", "")
            if function is None or source.split(":")[2] != "sqs":
                continue
            pollers.append(
                SqsEventSourcePoller(mapping["UUID"], source, function, clients, concurrency)
            )
        if not response.get("NextMarker"):
            return pollers
        kwargs["Marker"] = response["NextMarker"]


# -- resources moto's CloudFormation does not create --------------------------------------------


def _apply_event_invoke_configs(
    clients: AwsClients,
    cfn_template: dict[str, Any],
    resources: Mapping[str, StackResource],
    parameters: Mapping[str, str],
) -> None:
    """Create each AWS::Lambda::EventInvokeConfig through the Lambda API (moto's CFN skips it)."""
    resolver = _Resolver(clients, cfn_template, resources, parameters)
    for resource in (cfn_template.get("Resources") or {}).values():
        if resource.get("Type") != "AWS::Lambda::EventInvokeConfig":
            continue
        properties = resource.get("Properties") or {}
        request: dict[str, Any] = {"FunctionName": resolver.resolve(properties["FunctionName"])}
        for key in ("MaximumRetryAttempts", "MaximumEventAgeInSeconds"):
            if key in properties:
                request[key] = int(resolver.resolve(properties[key]))
        destinations: dict[str, Any] = {}
        for kind, destination in (properties.get("DestinationConfig") or {}).items():
            arn = resolver.resolve((destination or {}).get("Destination"))
            if arn:
                destinations[kind] = {"Destination": arn}
        if destinations:
            request["DestinationConfig"] = destinations
        clients.lambda_.put_function_event_invoke_config(**request)


class _Resolver:
    """Enough of CloudFormation's intrinsics to resolve an EventInvokeConfig's properties."""

    def __init__(
        self,
        clients: AwsClients,
        cfn_template: dict[str, Any],
        resources: Mapping[str, StackResource],
        parameters: Mapping[str, str],
    ) -> None:
        self._clients = clients
        self._resources = resources
        self._parameters = dict(parameters)
        for name, declaration in (cfn_template.get("Parameters") or {}).items():
            if name not in self._parameters and "Default" in declaration:
                self._parameters[name] = str(declaration["Default"])
        self._conditions = cfn_template.get("Conditions") or {}

    def resolve(self, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        if "Ref" in value:
            name = value["Ref"]
            if name in self._parameters:
                return self._parameters[name]
            return self._resources[name].physical_id
        if "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"]
            logical_id, attribute = target.split(".", 1) if isinstance(target, str) else target
            if attribute != "Arn":
                raise NotImplementedError(f"Fn::GetAtt {attribute} not resolved locally")
            return self._arn(self._resources[logical_id])
        if "Fn::If" in value:
            condition, if_true, if_false = value["Fn::If"]
            return self.resolve(if_true if self._condition(condition) else if_false)
        raise NotImplementedError(f"intrinsic not resolved locally: {sorted(value)}")

    def _condition(self, name: str) -> bool:
        return self._evaluate(self._conditions[name])

    def _evaluate(self, expression: Any) -> bool:
        if isinstance(expression, dict) and len(expression) == 1:
            function, arguments = next(iter(expression.items()))
            if function == "Condition":
                return self._condition(arguments)
            if function == "Fn::Equals":
                left, right = (self.resolve(a) for a in arguments)
                return str(left) == str(right)
            if function == "Fn::Not":
                return not self._evaluate(arguments[0])
            if function == "Fn::And":
                return all(self._evaluate(a) for a in arguments)
            if function == "Fn::Or":
                return any(self._evaluate(a) for a in arguments)
        raise NotImplementedError(f"condition not resolved locally: {expression!r}")

    def _arn(self, resource: StackResource) -> str:
        physical = resource.physical_id
        if physical.startswith("arn:"):
            return physical
        if resource.resource_type == "AWS::SQS::Queue":
            url = self._clients.sqs.get_queue_url(QueueName=physical.rsplit("/", 1)[-1])["QueueUrl"]
            return self._clients.sqs.get_queue_attributes(
                QueueUrl=url, AttributeNames=["QueueArn"]
            )["Attributes"]["QueueArn"]
        if resource.resource_type == "AWS::Lambda::Function":
            return self._clients.lambda_.get_function(FunctionName=physical)["Configuration"][
                "FunctionArn"
            ]
        if resource.resource_type == "AWS::Events::EventBus":
            return self._clients.events.describe_event_bus(Name=physical)["Arn"]
        raise NotImplementedError(f"no ARN for {resource.resource_type} locally")
