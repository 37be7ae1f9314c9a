"""The SAM template: translated with aws-sam-translator, it holds the pipeline's invariants and
deploys into moto's CloudFormation.

The invariants are read from the translated (plain CloudFormation) template, so they hold for
what AWS would actually create, not for the SAM shorthand.
"""

from __future__ import annotations

import copy
import importlib.util
import io
import json
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from notifyctl.local.translate import (
    PLACEHOLDER_CODE_BUCKET,
    code_uris,
    load_template,
    samconfig_parameters,
    translate,
)

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
SAMCONFIG = ROOT / "samconfig.toml"

CHANNEL_QUEUES = {"EmailQueue", "SmsQueue", "PushQueue", "WebhookQueue"}
DOMAIN_EVENT_TYPES = {"UserRegistered", "OrderPlaced", "PaymentReceived"}
CATCH_ALL_RULES = {"UnroutedEventTypeRule", "UnknownSourceRule"}

# Translated with the template's defaults, and with a non-default MaxAttempts.
PARAMETER_SETS = {
    "defaults": {},
    "max-attempts-5": {"MaxAttempts": "5"},
}


# ---------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def sam_template() -> dict[str, Any]:
    return load_template(TEMPLATE)


@pytest.fixture(scope="module", params=sorted(PARAMETER_SETS))
def case(request: pytest.FixtureRequest, sam_template: dict[str, Any]) -> Translated:
    parameters = PARAMETER_SETS[request.param]
    return Translated(translate(sam_template, parameters))


@pytest.fixture
def aws_account(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A fresh moto account in us-east-1 with fake credentials."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield


class Translated:
    """A translated template plus the small resolver the assertions need."""

    def __init__(self, template: dict[str, Any]) -> None:
        self.template = template
        self.resources: dict[str, Any] = template["Resources"]

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v["Type"] == resource_type}

    def props(self, logical_id: str) -> dict[str, Any]:
        properties: dict[str, Any] = self.resources[logical_id]["Properties"]
        return properties

    def parameter(self, name: str) -> Any:
        return self.template["Parameters"][name]["Default"]

    def resolve(self, value: Any) -> Any:
        """Resolve a Ref to a parameter (its default) and Fn::FindInMap; leave the rest."""
        if (
            isinstance(value, dict)
            and set(value) == {"Ref"}
            and value["Ref"] in self.template.get("Parameters", {})
        ):
            return self.parameter(value["Ref"])
        if isinstance(value, dict) and set(value) == {"Fn::FindInMap"}:
            name, top, second = (self.resolve(part) for part in value["Fn::FindInMap"])
            return self.template["Mappings"][name][str(top)][second]
        return value

    def sender_mappings(self) -> dict[str, dict[str, Any]]:
        return {
            logical_id: resource["Properties"]
            for logical_id, resource in self.of_type("AWS::Lambda::EventSourceMapping").items()
            if resource["Properties"]["FunctionName"] == {"Ref": "SenderFunction"}
        }

    def event_rules(self) -> dict[str, dict[str, Any]]:
        """Rules that route domain events (scheduled rules have no EventPattern)."""
        return {
            logical_id: rule
            for logical_id, rule in self.of_type("AWS::Events::Rule").items()
            if "EventPattern" in rule["Properties"]
        }

    def role_statements(self, function_id: str) -> list[dict[str, Any]]:
        role_id = self.props(function_id)["Role"]["Fn::GetAtt"][0]
        statements: list[dict[str, Any]] = []
        for policy in self.props(role_id).get("Policies", []):
            statements.extend(policy["PolicyDocument"]["Statement"])
        return statements


def actions_of(statement: dict[str, Any]) -> list[str]:
    actions = statement.get("Action", [])
    return [actions] if isinstance(actions, str) else list(actions)


def queue_in_sub(resource: Any) -> str | None:
    """The queue a SAM SQS policy template's Fn::Sub resource names, if any."""
    if isinstance(resource, dict) and "Fn::Sub" in resource:
        sub = resource["Fn::Sub"]
        if isinstance(sub, list) and "queueName" in sub[1]:
            queue_id: str = sub[1]["queueName"]["Fn::GetAtt"][0]
            return queue_id
    return None


def every_policy_statement(case: Translated) -> Iterator[tuple[str, dict[str, Any]]]:
    for logical_id, resource in case.resources.items():
        properties = resource.get("Properties", {})
        documents = [p["PolicyDocument"] for p in properties.get("Policies", [])]
        if "PolicyDocument" in properties:
            documents.append(properties["PolicyDocument"])
        for document in documents:
            for statement in document["Statement"]:
                yield logical_id, statement


# ---------------------------------------------------------------- invariants


def test_channel_queue_visibility_is_at_least_six_times_the_sender_timeout(
    case: Translated,
) -> None:
    # Given the translated template
    # When the sender's timeout and each channel queue's visibility timeout are resolved
    timeout = int(case.resolve(case.props("SenderFunction")["Timeout"]))
    queues = {props["EventSourceArn"]["Fn::GetAtt"][0] for props in case.sender_mappings().values()}
    # Then the sender reads exactly the four channel queues, each with visibility >= 6x timeout
    assert queues == CHANNEL_QUEUES
    for queue in queues:
        visibility = int(case.resolve(case.props(queue)["VisibilityTimeout"]))
        assert visibility >= 6 * timeout, queue


def test_every_allowed_sender_timeout_maps_to_a_visibility_of_at_least_six_times_it(
    case: Translated,
) -> None:
    # Given every SenderTimeoutSeconds the template allows
    allowed = case.template["Parameters"]["SenderTimeoutSeconds"]["AllowedValues"]
    # Then the mapping the queues read holds a visibility of at least 6x each of them
    for timeout in allowed:
        row = case.template["Mappings"]["SenderTimeouts"][str(timeout)]
        assert row["QueueVisibilityTimeout"] >= 6 * int(timeout), timeout


# maxReceiveCount per MaxAttempts the parameter sets translate with: MaxAttempts + 5.
MAX_RECEIVE_COUNT = {3: 8, 5: 10}


def test_max_receive_count_leaves_slack_above_max_attempts_on_every_channel_queue(
    case: Translated,
) -> None:
    # Given the MaxAttempts the template was translated with
    max_attempts = int(case.parameter("MaxAttempts"))
    for queue in CHANNEL_QUEUES:
        # When the queue's redrive policy is resolved
        redrive = case.props(queue)["RedrivePolicy"]
        # Then SQS redrives to NotificationsDLQ only 5 receives after the attempt limit: the
        # ledger's count is the limit, receives that are no attempt never redrive early
        assert int(case.resolve(redrive["maxReceiveCount"])) == MAX_RECEIVE_COUNT[max_attempts]
        assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["NotificationsDLQ", "Arn"]}
    # And the sender's attempt limit comes from the same parameter
    env = case.props("SenderFunction")["Environment"]["Variables"]
    assert int(case.resolve(env["MAX_ATTEMPTS"])) == max_attempts


def test_every_allowed_max_attempts_maps_to_a_receive_limit_of_at_least_5_above_it(
    case: Translated,
) -> None:
    # Given every MaxAttempts the template allows
    allowed = case.template["Parameters"]["MaxAttempts"]["AllowedValues"]
    assert [int(v) for v in allowed] == list(range(1, 21))
    rows = case.template["Mappings"]["ReceiveLimits"]
    assert sorted(int(key) for key in rows) == list(range(1, 21))
    # Then the mapping the queues read holds maxReceiveCount >= 5 (AWS's advice for Lambda
    # sources) and 5 receives above the attempt limit, for each of them
    for attempts in allowed:
        receives = rows[str(attempts)]["MaxReceiveCount"]
        assert receives >= 5, attempts
        assert receives - int(attempts) == 5, attempts


def test_non_default_max_attempts_reaches_the_queues(sam_template: dict[str, Any]) -> None:
    # Given the prod environment of samconfig.toml
    parameters = samconfig_parameters(SAMCONFIG, "prod")
    # When the template is translated with its overrides
    prod = Translated(translate(sam_template, parameters))
    # Then every channel queue's backstop sits 5 receives above the prod MaxAttempts (5)
    assert parameters["MaxAttempts"] == "5"
    for queue in CHANNEL_QUEUES:
        assert int(prod.resolve(prod.props(queue)["RedrivePolicy"]["maxReceiveCount"])) == 10


@pytest.mark.parametrize(
    "overrides",
    [
        '"Stage=prod MaxAttempts=5 SenderEmail=\\"ops@example.com\\""',
        '["Stage=prod", "MaxAttempts=5", "SenderEmail=ops@example.com"]',
        '"ParameterKey=Stage,ParameterValue=prod ParameterKey=MaxAttempts,ParameterValue=5 '
        'ParameterKey=SenderEmail,ParameterValue=ops@example.com"',
    ],
    ids=["string", "list", "parameter-key-form"],
)
def test_samconfig_overrides_are_read_in_every_form_sam_accepts(
    tmp_path: Path, overrides: str
) -> None:
    # Given a samconfig whose prod environment overrides parameters in one of SAM's forms
    config = tmp_path / "samconfig.toml"
    config.write_text(
        "version = 0.1\n"
        "[prod.global.parameters]\n"
        'stack_name = "notifications-prod"\n'
        "[prod.deploy.parameters]\n"
        f"parameter_overrides = {overrides}\n",
        encoding="utf-8",
    )
    # When its parameters are read
    parameters = samconfig_parameters(config, "prod")
    # Then each override comes back as a plain string
    assert parameters == {"Stage": "prod", "MaxAttempts": "5", "SenderEmail": "ops@example.com"}


def test_translation_leaves_the_sam_template_untouched_and_uses_placeholder_code(
    sam_template: dict[str, Any],
) -> None:
    # Given the SAM template as loaded
    before = copy.deepcopy(sam_template)
    # When it is translated without code locations
    translated = Translated(translate(sam_template, {"Stage": "staging"}))
    # Then the input is unchanged, the code points at the placeholder bucket
    assert sam_template == before
    assert translated.props("SenderFunction")["Code"]["S3Bucket"] == PLACEHOLDER_CODE_BUCKET
    # And the given parameter became the translated template's default
    assert translated.parameter("Stage") == "staging"
    assert translated.parameter("MaxAttempts") == "3"


def test_every_sender_mapping_reports_batch_item_failures(case: Translated) -> None:
    # Given every event source mapping in the template (the sender's four and the alarm's)
    mappings = case.of_type("AWS::Lambda::EventSourceMapping")
    assert len(case.sender_mappings()) == 4
    # Then each one reports partial batch failures instead of retrying whole batches
    for logical_id, resource in mappings.items():
        assert "ReportBatchItemFailures" in resource["Properties"]["FunctionResponseTypes"], (
            logical_id
        )
    # And the sender's mappings batch 10 at a time under a per-channel concurrency cap
    for props in case.sender_mappings().values():
        assert props["BatchSize"] == 10
        cap = int(case.resolve(props["ScalingConfig"]["MaximumConcurrency"]))
        assert cap == int(case.parameter("MaxConcurrencyPerChannel"))


def test_sender_role_may_change_message_visibility_on_every_channel_queue(
    case: Translated,
) -> None:
    # Given the statements of the sender's execution role
    statements = case.role_statements("SenderFunction")
    # When we collect the queues it may call ChangeMessageVisibility on
    queues = {
        queue_in_sub(statement["Resource"])
        for statement in statements
        if statement["Effect"] == "Allow" and "sqs:ChangeMessageVisibility" in actions_of(statement)
    }
    # Then every channel queue is covered, so the backoff can set each message's delay
    assert queues >= CHANNEL_QUEUES


def test_dead_letter_queues_keep_messages_longer_than_their_sources(case: Translated) -> None:
    # Given the retention of the channel queues and of the dead-letter queues
    dlq_retention = int(case.props("NotificationsDLQ")["MessageRetentionPeriod"])
    # Then NotificationsDLQ keeps messages 14 days, longer than any channel queue
    assert dlq_retention == 14 * 24 * 3600
    for queue in CHANNEL_QUEUES:
        assert dlq_retention > int(case.props(queue)["MessageRetentionPeriod"]), queue
    # And EventsDLQ keeps undeliverable domain events 14 days as well
    assert int(case.props("EventsDLQ")["MessageRetentionPeriod"]) == 14 * 24 * 3600


def test_every_rule_target_has_a_retry_policy_and_a_dead_letter_queue(case: Translated) -> None:
    # Given the EventBridge rules with patterns: the domain rules on the stage's bus, and the
    # SES feedback rule on the default bus (the only bus SES publishes to)
    rules = case.event_rules()
    on_bus = {k: r for k, r in rules.items() if "EventBusName" in r["Properties"]}
    domain = {k: r for k, r in on_bus.items() if k not in CATCH_ALL_RULES}
    detail_types = {
        detail_type
        for rule in domain.values()
        for detail_type in rule["Properties"]["EventPattern"]["detail-type"]
    }
    # Then there is one rule per domain event type, on the custom bus, to the fan-out's buffer
    assert detail_types == DOMAIN_EVENT_TYPES
    assert len(domain) == len(DOMAIN_EVENT_TYPES)
    # And the catch-all rules send the bus's other events there too: the accepted sources'
    # other types (anything but the routed ones), and every other source
    unrouted = on_bus["UnroutedEventTypeRule"]["Properties"]["EventPattern"]
    assert set(unrouted["detail-type"][0]["anything-but"]) == DOMAIN_EVENT_TYPES
    assert unrouted["source"] == {"Fn::Split": [",", {"Ref": "EventSource"}]}
    unknown_source = on_bus["UnknownSourceRule"]["Properties"]["EventPattern"]
    assert unknown_source == {
        "source": [{"anything-but": {"Fn::Split": [",", {"Ref": "EventSource"}]}}]
    }
    for rule in on_bus.values():
        assert rule["Properties"]["EventBusName"] == {"Fn::GetAtt": ["EventBus", "Name"]}
        assert [t["Arn"] for t in rule["Properties"]["Targets"]] == [
            {"Fn::GetAtt": ["FanOutQueue", "Arn"]}
        ]
        # (the event as it is: no transformer, so the fan-out and a replay see the envelope)
        assert all(
            not {"Input", "InputPath", "InputTransformer"} & set(target)
            for target in rule["Properties"]["Targets"]
        )
    (feedback,) = [r for k, r in rules.items() if k not in on_bus]
    assert feedback["Properties"]["EventPattern"]["source"] == ["aws.ses"]
    # And every target retries and parks what it cannot deliver in EventsDLQ
    for logical_id, rule in rules.items():
        for target in rule["Properties"]["Targets"]:
            assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0, logical_id
            assert target["RetryPolicy"]["MaximumEventAgeInSeconds"] > 0, logical_id
            assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": ["EventsDLQ", "Arn"]}


def test_events_dlq_accepts_dead_letters_from_exactly_the_rules(case: Translated) -> None:
    # Given the EventsDLQ queue policy
    statement = case.props("EventsDLQPolicy")["PolicyDocument"]["Statement"][0]
    # Then EventBridge may send to it, but only on behalf of the stack's own rules
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert actions_of(statement) == ["sqs:SendMessage"]
    sources = statement["Condition"]["ArnEquals"]["aws:SourceArn"]
    assert {source["Fn::GetAtt"][0] for source in sources} == set(case.event_rules())


def test_the_fan_out_consumes_a_buffer_queue_that_redrives_to_the_events_dlq(
    case: Translated,
) -> None:
    # Given the fan-out function, its event source mappings and FanOutQueue
    mappings = [
        resource["Properties"]
        for resource in case.of_type("AWS::Lambda::EventSourceMapping").values()
        if resource["Properties"]["FunctionName"] == {"Ref": "FanOutFunction"}
    ]
    queue = case.props("FanOutQueue")
    timeout = int(case.props("FanOutFunction")["Timeout"])

    # Then the function takes batches of up to ten events from FanOutQueue, failing per item
    assert len(mappings) == 1
    (mapping,) = mappings
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["FanOutQueue", "Arn"]}
    assert mapping["BatchSize"] == 10
    assert mapping["MaximumBatchingWindowInSeconds"] == 1
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # And an event it keeps failing is moved to EventsDLQ after five receives (AWS's minimum
    # advice for Lambda sources)
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["EventsDLQ", "Arn"]},
        "maxReceiveCount": 5,
    }
    # And a batch in progress is never offered twice: visibility is 6 x the function timeout
    assert int(queue["VisibilityTimeout"]) >= 6 * timeout
    assert queue["SqsManagedSseEnabled"] is True
    # And nothing invokes the fan-out asynchronously any more: no async retry or destination
    assert not [
        config
        for config in case.of_type("AWS::Lambda::EventInvokeConfig").values()
        if config["Properties"]["FunctionName"] == {"Ref": "FanOutFunction"}
    ]
    assert not [
        permission
        for permission in case.of_type("AWS::Lambda::Permission").values()
        if permission["Properties"]["FunctionName"] == {"Ref": "FanOutFunction"}
    ]
    # And the fan-out role may still send its own rejects to EventsDLQ
    send_targets = {
        json.dumps(statement["Resource"], sort_keys=True)
        for statement in case.role_statements("FanOutFunction")
        if any(action.startswith("sqs:SendMessage") for action in actions_of(statement))
    }
    assert any("EventsDLQ" in target for target in send_targets)


def test_fan_out_queue_accepts_events_from_exactly_the_domain_rules(case: Translated) -> None:
    # Given FanOutQueue's queue policy
    (policy,) = [
        p["Properties"]
        for p in case.of_type("AWS::SQS::QueuePolicy").values()
        if p["Properties"]["Queues"] == [{"Ref": "FanOutQueue"}]
    ]
    (statement,) = policy["PolicyDocument"]["Statement"]
    # Then only EventBridge may send, on behalf of the domain and catch-all rules and no other
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert actions_of(statement) == ["sqs:SendMessage"]
    assert statement["Resource"] == {"Fn::GetAtt": ["FanOutQueue", "Arn"]}
    sources = statement["Condition"]["ArnEquals"]["aws:SourceArn"]
    domain = {
        logical_id
        for logical_id, rule in case.event_rules().items()
        if "EventBusName" in rule["Properties"]
    }
    assert {source["Fn::GetAtt"][0] for source in sources} == domain
    assert len(domain) == len(DOMAIN_EVENT_TYPES) + len(CATCH_ALL_RULES)


def test_no_iam_statement_allows_every_action(case: Translated) -> None:
    # Given every policy statement in the translated template (roles and resource policies)
    statements = list(every_policy_statement(case))
    assert len(statements) > 20
    # Then no action is "*" or "<service>:*"
    wildcard = re.compile(r"^(\*|[a-z0-9-]+:\*)$")
    offending = [
        (logical_id, action)
        for logical_id, statement in statements
        for action in actions_of(statement)
        if wildcard.match(action)
    ]
    assert offending == []
    # And no statement uses NotAction, which would grant everything else
    assert all("NotAction" not in statement for _, statement in statements)


def test_template_passes_cfn_lint() -> None:
    # Given cfn-lint is installed
    if importlib.util.find_spec("cfnlint") is None:
        pytest.skip("cfn-lint is not installed in this interpreter (pip install cfn-lint)")
    # When it lints template.yaml
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from cfnlint.runner import main; sys.exit(main())",
            str(TEMPLATE),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    # Then it reports nothing
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


# ---------------------------------------------------------------- deployment into moto


def upload_code(template: dict[str, Any], bucket: str) -> dict[str, tuple[str, str]]:
    """Upload a small zip per CodeUri/ContentUri; the stack only needs the objects to exist."""
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket)
    locations: dict[str, tuple[str, str]] = {}
    for uri in code_uris(template):
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as zipped:
            zipped.writestr("app.py", "def handler(event, context):\n    return None\n")
        key = uri.strip("/").replace("/", "-") + ".zip"
        s3.put_object(Bucket=bucket, Key=key, Body=archive.getvalue())
        locations[uri] = (bucket, key)
    return locations


# moto's CloudFormation has no AWS::SQS::QueuePolicy, AWS::Lambda::EventInvokeConfig or
# AWS::SNS::Subscription: it warns and skips them (the local runtime reads them from the
# translated template instead). The invariants above assert them on the template.
@pytest.mark.filterwarnings("ignore:Tried to parse:UserWarning")
def test_stack_deploys_into_moto_with_readable_outputs(
    aws_account: None, sam_template: dict[str, Any]
) -> None:
    # Given the template translated with MaxAttempts 5 and its code uploaded to S3
    locations = upload_code(sam_template, "notifications-code")
    cloudformation_template = translate(sam_template, {"MaxAttempts": "5"}, locations)
    cfn = boto3.client("cloudformation")

    # When the stack is created
    cfn.create_stack(
        StackName="notifications-dev",
        TemplateBody=json.dumps(cloudformation_template),
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
    )

    # Then the stack and every resource in it are CREATE_COMPLETE
    stack = cfn.describe_stacks(StackName="notifications-dev")["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    summaries = cfn.list_stack_resources(StackName="notifications-dev")["StackResourceSummaries"]
    assert {s["ResourceStatus"] for s in summaries} == {"CREATE_COMPLETE"}
    created = {s["LogicalResourceId"] for s in summaries}
    assert CHANNEL_QUEUES | {"SenderFunction", "FanOutFunction", "LedgerTable"} <= created

    # And every declared output is there
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    # (the SES configuration set's too: notifyctl.local.cfn_resources teaches moto that type)
    assert set(outputs) == set(cloudformation_template["Outputs"])

    # And the queue URLs lead to queues configured as the template says
    sqs = boto3.client("sqs")
    for queue in CHANNEL_QUEUES:
        attributes = sqs.get_queue_attributes(
            QueueUrl=outputs[f"{queue}Url"], AttributeNames=["All"]
        )["Attributes"]
        assert attributes["QueueArn"] == outputs[f"{queue}Arn"]
        assert json.loads(attributes["RedrivePolicy"]) == {
            "deadLetterTargetArn": outputs["NotificationsDLQArn"],
            "maxReceiveCount": 10,
        }
        assert int(attributes["VisibilityTimeout"]) == 180
        assert attributes["SqsManagedSseEnabled"] == "true"

    # And the table, topic, bus and bucket outputs name live resources
    dynamodb = boto3.client("dynamodb")
    ledger = dynamodb.describe_table(TableName=outputs["LedgerTableName"])["Table"]
    assert ledger["TableArn"] == outputs["LedgerTableArn"]
    assert [i["IndexName"] for i in ledger["GlobalSecondaryIndexes"]] == [
        "by_status",
        "by_provider_message",
    ]
    boto3.client("sns").get_topic_attributes(TopicArn=outputs["AlertsTopicArn"])
    bus = boto3.client("events").describe_event_bus(Name=outputs["EventBusName"])
    assert bus["Arn"] == outputs["EventBusArn"]
    boto3.client("s3").head_bucket(Bucket=outputs["AttachmentsBucketName"])

    # And the sender is wired to what the outputs name, and polls with partial batch failures
    lambda_client = boto3.client("lambda")
    sender = lambda_client.get_function_configuration(FunctionName=outputs["SenderFunctionName"])
    assert sender["FunctionArn"] == outputs["SenderFunctionArn"]
    variables = sender["Environment"]["Variables"]
    assert variables["QUEUE_URL_EMAIL"] == outputs["EmailQueueUrl"]
    assert variables["NOTIFICATIONS_DLQ_URL"] == outputs["NotificationsDLQUrl"]
    assert variables["LEDGER_TABLE"] == outputs["LedgerTableName"]
    assert str(variables["MAX_ATTEMPTS"]) == "5"
    mappings = lambda_client.list_event_source_mappings(FunctionName=outputs["SenderFunctionName"])[
        "EventSourceMappings"
    ]
    assert {m["EventSourceArn"] for m in mappings} == {
        outputs[f"{queue}Arn"] for queue in CHANNEL_QUEUES
    }
    assert all(m["FunctionResponseTypes"] == ["ReportBatchItemFailures"] for m in mappings)

    # And the three domain rules and the two catch-all rules route to the fan-out's buffer
    # queue on the stage's bus
    events = boto3.client("events")
    rules = events.list_rules(EventBusName=outputs["EventBusName"])["Rules"]
    assert len(rules) == 5
    for rule in rules:
        targets = events.list_targets_by_rule(
            Rule=rule["Name"], EventBusName=outputs["EventBusName"]
        )["Targets"]
        assert [t["Arn"] for t in targets] == [outputs["FanOutQueueArn"]]
    # And the buffer redrives to EventsDLQ and is polled by the fan-out with partial failures
    buffer = sqs.get_queue_attributes(QueueUrl=outputs["FanOutQueueUrl"], AttributeNames=["All"])[
        "Attributes"
    ]
    assert json.loads(buffer["RedrivePolicy"]) == {
        "deadLetterTargetArn": outputs["EventsDLQArn"],
        "maxReceiveCount": 5,
    }
    (fan_out_mapping,) = lambda_client.list_event_source_mappings(
        FunctionName=outputs["FanOutFunctionName"]
    )["EventSourceMappings"]
    assert fan_out_mapping["EventSourceArn"] == outputs["FanOutQueueArn"]
    assert fan_out_mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


# ---------------------------------------------------------------- delivery policy


def test_no_idempotency_table_remains_the_ledger_is_the_send_guard(case: Translated) -> None:
    # Given the translated template
    # Then there is no separate idempotency table, and no function is told of one
    assert "IdempotencyTable" not in case.resources
    for function in case.of_type("AWS::Lambda::Function").values():
        variables = function["Properties"].get("Environment", {}).get("Variables", {})
        assert "IDEMPOTENCY_TABLE" not in variables


def test_policy_state_table_has_a_ttl_and_the_sender_reads_it(case: Translated) -> None:
    table = case.props("PolicyStateTable")
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert [k["AttributeName"] for k in table["KeySchema"]] == ["pk", "sk"]
    variables = case.props("SenderFunction")["Environment"]["Variables"]
    assert variables["POLICY_STATE_TABLE"] == {"Ref": "PolicyStateTable"}
    assert variables["RATE_LIMIT_PER_MINUTE"] == {"Ref": "RateLimitPerMinute"}
    assert variables["BREAKER_FAILURE_THRESHOLD"] == {"Ref": "BreakerFailureThreshold"}
    assert variables["BREAKER_OPEN_SECONDS"] == {"Ref": "BreakerOpenSeconds"}
    assert case.parameter("RateLimitPerMinute") == 100
    assert case.parameter("BreakerFailureThreshold") == 5
    assert case.parameter("BreakerOpenSeconds") == 60


def test_sender_may_create_deferral_schedules_only_in_its_group_with_its_role(
    case: Translated,
) -> None:
    # Given the sender's role statements
    statements = case.role_statements("SenderFunction")
    create = [s for s in statements if "scheduler:CreateSchedule" in actions_of(s)]
    pass_role = [s for s in statements if "iam:PassRole" in actions_of(s)]
    # Then it creates schedules in the deferral group only
    assert len(create) == 1
    assert "schedule/notifications-${Stage}-deferrals/*" in create[0]["Resource"]["Fn::Sub"]
    assert case.props("DeferralScheduleGroup")["Name"] == {
        "Fn::Sub": "notifications-${Stage}-deferrals"
    }
    # And passes the scheduler role, to Scheduler only
    assert len(pass_role) == 1
    assert pass_role[0]["Resource"] == {"Fn::GetAtt": ["DeferralSchedulerRole", "Arn"]}
    assert pass_role[0]["Condition"] == {
        "StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}
    }
    variables = case.props("SenderFunction")["Environment"]["Variables"]
    assert variables["SCHEDULER_ROLE_ARN"] == {"Fn::GetAtt": ["DeferralSchedulerRole", "Arn"]}


def test_scheduler_role_is_assumed_by_scheduler_and_sends_to_the_channel_queues(
    case: Translated,
) -> None:
    role = case.props("DeferralSchedulerRole")
    trust = role["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "scheduler.amazonaws.com"}]
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    assert [actions_of(s) for s in statements] == [["sqs:SendMessage"]]
    assert {r["Fn::GetAtt"][0] for r in statements[0]["Resource"]} == CHANNEL_QUEUES


def test_breaker_check_runs_every_minute_and_toggles_only_the_senders_mappings(
    case: Translated,
) -> None:
    # Given the scheduled rules
    scheduled = {
        logical_id: rule["Properties"]
        for logical_id, rule in case.of_type("AWS::Events::Rule").items()
        if "ScheduleExpression" in rule["Properties"]
    }
    # Then one, every minute, targets the breaker check
    assert [p["ScheduleExpression"] for p in scheduled.values()] == ["rate(1 minute)"]
    targets = next(iter(scheduled.values()))["Targets"]
    assert [t["Arn"] for t in targets] == [{"Fn::GetAtt": ["BreakerCheckFunction", "Arn"]}]
    # And it may update mappings of the sender function only
    toggles = [
        s
        for s in case.role_statements("BreakerCheckFunction")
        if "lambda:UpdateEventSourceMapping" in actions_of(s)
    ]
    assert len(toggles) == 1
    arns = toggles[0]["Condition"]["StringLike"]["lambda:FunctionArn"]
    assert all("function:notifications-${Stage}-sender" in a["Fn::Sub"] for a in arns)
    variables = case.props("BreakerCheckFunction")["Environment"]["Variables"]
    assert variables["SENDER_FUNCTION_NAME"] == {"Fn::Sub": "notifications-${Stage}-sender"}


def test_alarms_can_publish_to_alerts_topic_through_its_customer_managed_key(
    case: Translated,
) -> None:
    # Given AlertsTopic, which the alarms notify
    alarms = case.of_type("AWS::CloudWatch::Alarm")
    assert {"DeadLettersAlarm", "DlqOldestMessageAlarm", "CircuitOpenAlarm"} <= set(alarms)
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "AlertsTopic"}]
    # Then it is encrypted with the stack's own key, not the AWS managed alias/aws/sns (whose
    # policy cannot let CloudWatch use it: no alarm would ever notify)
    assert case.props("AlertsTopic")["KmsMasterKeyId"] == {"Ref": "AlertsKey"}
    key = case.resources["AlertsKey"]
    assert key["Type"] == "AWS::KMS::Key"
    assert key["Properties"]["EnableKeyRotation"] is True
    # And the key policy lets CloudWatch encrypt and decrypt with it
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    cloudwatch = [
        s for s in statements if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert len(cloudwatch) == 1
    assert set(actions_of(cloudwatch[0])) == {"kms:GenerateDataKey*", "kms:Decrypt"}
    assert cloudwatch[0]["Effect"] == "Allow"
    # And no statement grants kms:* (the account administers it with named actions)
    for statement in statements:
        assert not [a for a in actions_of(statement) if a in ("*", "kms:*")], statement["Sid"]
    # And the alarm function, which publishes dead-letter alerts, may use that key
    grants = [
        s
        for s in case.role_statements("DlqAlarmFunction")
        if {"kms:GenerateDataKey*", "kms:Decrypt"} <= set(actions_of(s))
    ]
    assert [g["Resource"] for g in grants] == [{"Fn::GetAtt": ["AlertsKey", "Arn"]}]
    assert case.props("AlertsKeyAlias")["TargetKeyId"] == {"Ref": "AlertsKey"}


def test_the_breaker_check_reads_the_sender_mappings_by_their_arns_without_a_condition(
    case: Translated,
) -> None:
    # Given the breaker check's statements granting lambda:GetEventSourceMapping
    role_id = case.props("BreakerCheckFunction")["Role"]["Fn::GetAtt"][0]
    statements = [
        s
        for policy in case.props(role_id)["Policies"]
        for s in policy["PolicyDocument"]["Statement"]
        if "lambda:GetEventSourceMapping" in actions_of(s)
    ]
    # Then it is one statement of its own, with no condition key to depend on
    assert len(statements) == 1
    (statement,) = statements
    assert actions_of(statement) == ["lambda:GetEventSourceMapping"]
    assert "Condition" not in statement
    # And it names exactly the ARNs of the sender's four event source mappings
    named = set()
    for resource in statement["Resource"]:
        text = resource["Fn::Sub"]
        prefix = (
            "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:event-source-mapping:"
        )
        assert text.startswith(prefix), text
        named.add(text.removeprefix(prefix).strip("${}"))
    assert named == set(case.sender_mappings())
