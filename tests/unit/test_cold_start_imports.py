"""Cold start: what a handler imports before its first invocation, and the tracer switch.

Each check that is about imports runs in a fresh interpreter (``sys.modules`` of the test
process already holds everything), with the function's environment from ``events/env.json``
and ``LAMBDA_TASK_ROOT`` set, as in Lambda.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from notifications.channels.faults import FaultInjectingProvider
from notifications.models import Channel
from notifications.sending import build_providers
from notifications.settings import SenderSettings, SettingsError
from tests.samples import load_event

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = {
    "fan_out": "FanOutFunction",
    "sender": "SenderFunction",
    "dlq_alarm": "DlqAlarmFunction",
    "breaker_check": "BreakerCheckFunction",
    "delivery_feedback": "DeliveryFeedbackFunction",
    "preference_center": "PreferenceCenterFunction",
}
TRACE_HEADER = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"


def run_in_function(function: str, code: str, **overrides: str) -> list[str]:
    """Run ``code`` in a fresh interpreter in the function's directory and environment; the
    lines it prints."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT / "layers" / "notifications"),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_NAME": FUNCTIONS[function],
        "LAMBDA_TASK_ROOT": str(ROOT / "functions" / function),
        **load_event("env.json")[FUNCTIONS[function]],
        **overrides,
    }
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT / "functions" / function,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.splitlines()


def loaded(*modules: str) -> str:
    """Code printing which of ``modules`` the interpreter has imported, as a JSON list."""
    return (
        f"import sys, json; print(json.dumps([m for m in {list(modules)!r} if m in sys.modules]))"
    )


def test_env_json_switches_the_tracer_off_for_every_function():
    # Given the environment sam local and the benchmarks use (the template's default,
    # TraceAwsCalls=false)
    env = load_event("env.json")
    # Then every function has Powertools tracing off
    assert {
        name: variables.get("POWERTOOLS_TRACE_DISABLED") for name, variables in env.items()
    } == dict.fromkeys(FUNCTIONS.values(), "true")


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_no_handler_loads_the_xray_sdk_with_tracing_off(function):
    # When a handler module is imported in Lambda with POWERTOOLS_TRACE_DISABLED=true
    lines = run_in_function(function, "import app\n" + loaded("aws_xray_sdk", "wrapt"))
    # Then neither the X-Ray SDK nor its wrapt dependency was imported
    assert json.loads(lines[-1]) == []


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_with_tracing_on_every_function_patches_boto3_at_import(function):
    # When a handler module is imported in Lambda with TraceAwsCalls=true
    code = """
import app
from aws_xray_sdk.core.patcher import _PATCHED_MODULES
print("botocore" in _PATCHED_MODULES)
"""
    lines = run_in_function(function, code, POWERTOOLS_TRACE_DISABLED="false")
    # Then the X-Ray SDK has patched botocore, as Powertools does: the breaker check, which
    # has no handler decorator, traces its AWS calls too
    assert lines[-1] == "True"


@pytest.mark.parametrize("function", ["sender", "dlq_alarm"])
def test_the_sqs_handlers_do_without_the_powertools_batch_utility(function):
    # When a handler that takes SQS batches is imported
    lines = run_in_function(
        function,
        "import app\n"
        + loaded(
            "aws_lambda_powertools.utilities.batch",
            "aws_lambda_powertools.utilities.data_classes",
            "asyncio",
        ),
    )
    # Then its partial batch loop (notifications.batch) brought none of the batch utility
    assert json.loads(lines[-1]) == []


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_no_handler_imports_pydantic(function):
    # When the handler module is imported (its settings, models, adapters, Powertools)
    lines = run_in_function(function, "import app\n" + loaded("pydantic", "pydantic_core"))
    # Then pydantic is not loaded: the requests, the domain events and the preferences are
    # msgspec structs (the layer ships no pydantic; the bench scripts compare against it)
    assert json.loads(lines[-1]) == []


def test_the_breaker_check_loads_no_pydantic():
    # When the breaker check's handler module is imported (settings, breaker, policy state)
    lines = run_in_function("breaker_check", "import app\n" + loaded("pydantic", "pydantic_core"))
    # Then pydantic was not imported: its settings are plain Python and it needs no
    # pydantic model (Channel lives in notifications.kinds)
    assert json.loads(lines[-1]) == []


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_settings_are_built_without_pydantic(function):
    # When a function's settings module alone is imported and its settings built
    code = (
        "from notifications import settings\n"
        "built = [c.from_env() for c in vars(settings).values()\n"
        "         if isinstance(c, type) and c.__name__ == settings_name]\n"
        f"{loaded('pydantic', 'pydantic_core')}"
    )
    name = {
        "fan_out": "FanOutSettings",
        "sender": "SenderSettings",
        "dlq_alarm": "AlarmSettings",
        "breaker_check": "BreakerCheckSettings",
        "delivery_feedback": "FeedbackSettings",
        "preference_center": "PreferenceCenterSettings",
    }[function]
    lines = run_in_function(function, f"settings_name = {name!r}\n" + code)
    # Then the settings were built from the function's environment without pydantic
    assert json.loads(lines[-1]) == []


def test_the_sender_handles_its_first_email_without_pydantic():
    # When the sender is imported and its first email is parsed, checked, rendered and built
    code = f"""
import app
from notifications.contracts import parse_request
from notifications.models import Channel
from notifications.registry import validate_recipient
from tests.samples import welcome
request = parse_request(welcome(1).model_dump_json())
validate_recipient(request.channel, request.recipient)
app.sender.providers[Channel.EMAIL].build_message(request, app.sender.renderer.render(request))
{loaded("pydantic", "pydantic_core", "notifications.events", "notifications.preferences")}
"""
    lines = run_in_function(
        "sender",
        code,
        PYTHONPATH=f"{ROOT / 'layers' / 'notifications'}:{ROOT}",
        PREFERENCE_LINK_SECRET_ARN="",  # plain links: no Secrets Manager call from a unit test
    )
    # Then pydantic never loaded: the request is a msgspec struct, the settings plain Python,
    # and the domain events and preferences (pydantic) are not the sender's
    assert json.loads(lines[-1]) == []


def test_the_operational_events_are_put_without_pydantic():
    # When the alarm function puts a NotificationDeadLettered and the sender's two webhook
    # health events are put in the same process
    code = f"""
import json
from datetime import UTC, datetime
import app
from notifications.endpoint_health import EndpointHealth
from notifications.ledger import DeadLetterEntry
from notifications.operational_events import OperationalEvents
class Bus:
    def __init__(self): self.put_types = []
    def put(self, source, detail_type, detail): self.put_types.append(detail_type)
bus, now = Bus(), datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
events = OperationalEvents(bus)
health = EndpointHealth("sub-1", consecutive_failures=3, failing_since=now)
events.endpoint_disabled(health, now)
events.endpoint_recovered(health, now)
events.dead_lettered(
    DeadLetterEntry("n-1", "provider_unavailable", "503", "exhausted", "{{}}", 8, "m-1", "email"),
    now,
)
print(json.dumps(bus.put_types))
{loaded("pydantic", "pydantic_core")}
"""
    lines = run_in_function("dlq_alarm", code)
    # Then all three went on the bus, and pydantic was never imported: the details are
    # msgspec structs and the layer does not ship pydantic
    assert json.loads(lines[-2]) == [
        "WebhookEndpointDisabled",
        "WebhookEndpointRecovered",
        "NotificationDeadLettered",
    ]
    assert json.loads(lines[-1]) == []


FAN_OUT_FIRST_BATCH = """
import json
from types import SimpleNamespace
import boto3
from moto import mock_aws
from tests.samples import load_event

with mock_aws():
    env = load_event("env.json")["FanOutFunction"]
    sqs, dynamodb = boto3.client("sqs"), boto3.client("dynamodb")
    urls = {name: env[name] for name in env if "_URL" in name}
    for url in urls.values():
        sqs.create_queue(QueueName=url.rsplit("/", 1)[1])
    for table, key in (("LEDGER_TABLE", "notification_id"), ("PREFERENCES_TABLE", "user_id"),
                       ("WEBHOOK_SUBSCRIPTIONS_TABLE", "subscription_id")):
        dynamodb.create_table(
            TableName=env[table], BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}])
    # Alice has preferences: an email, a push endpoint, SMS opted out
    document = json.dumps({"user_id": "user-123", "email": "alice@example.com",
        "phone": "+14155550100", "opted_out_channels": ["sms"],
        "push_endpoints": ["arn:aws:sns:us-east-1:123456789012:endpoint/GCM/shop/0001"]})
    dynamodb.put_item(TableName=env["PREFERENCES_TABLE"],
                      Item={"user_id": {"S": "user-123"}, "document": {"S": document}})
    import app
    context = SimpleNamespace(function_name="FanOutFunction", memory_limit_in_mb=256,
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:f",
        aws_request_id="req-1")
    answer = app.handler(load_event("fan_out/sqs-batch.json"), context)
    counts = {name: int(sqs.get_queue_attributes(QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]["ApproximateNumberOfMessages"])
        for name, url in sorted(urls.items())}
    suppressed = dynamodb.scan(TableName=env["LEDGER_TABLE"])["Count"]
print(json.dumps([answer, counts, suppressed]))
"""


def test_the_fan_out_handles_its_first_batch_without_pydantic():
    # Given the fan-out's first batch (on moto): a UserRegistered, an OrderPlaced and a
    # PaymentReceived of a user with stored preferences, and an OrderPlaced without user_id
    code = FAN_OUT_FIRST_BATCH + loaded("pydantic", "pydantic_core")
    # When a cold fan-out handles it
    lines = run_in_function(
        "fan_out", code, PYTHONPATH=f"{ROOT / 'layers' / 'notifications'}:{ROOT}"
    )
    answer, counts, suppressed = json.loads(lines[-2])
    # Then every record settled: the valid events fanned out by the user's preferences (three
    # emails, two pushes, SMS opted out twice and recorded in the ledger), the invalid one
    # dead-lettered into EventsDLQ
    assert answer == {"batchItemFailures": []}
    assert counts == {
        "EVENTS_DLQ_URL": 1,
        "NOTIFICATIONS_DLQ_URL": 0,
        "QUEUE_URL_EMAIL": 3,
        "QUEUE_URL_PUSH": 2,
        "QUEUE_URL_SMS": 0,
        "QUEUE_URL_WEBHOOK": 0,
    }
    assert suppressed == 2
    # And pydantic was never imported: the events, the envelope and the preferences are
    # msgspec structs
    assert json.loads(lines[-1]) == []


def test_sender_cold_start_leaves_channel_libraries_for_first_use():
    # When the sender is imported, and then its email provider and recipient check are used
    code = f"""
import app
{loaded("phonenumbers", "email_validator", "jinja2", "notifications.channels.webhook")}
from notifications.models import Channel
from notifications.channels.email import validate_recipient
app.sender.providers[Channel.EMAIL]
validate_recipient("alice@example.com")
{loaded("phonenumbers", "email_validator", "notifications.channels.webhook")}
from notifications.channels.sms import validate_phone
app.sender.providers[Channel.SMS]
validate_phone("+14155550100")
{loaded("phonenumbers")}
"""
    at_import, after_email, after_sms = (
        json.loads(line) for line in run_in_function("sender", code)
    )
    # Then the import loads no channel library
    assert at_import == []
    # And the first email loads only what email needs
    assert after_email == ["email_validator"]
    # And SMS brings its phone number library when it first checks a number
    assert after_sms == ["phonenumbers"]


def test_traced_handler_reports_its_subsegment_and_aws_calls_to_the_daemon():
    # Given a stand-in X-Ray daemon and a sampled Lambda trace, with tracing on
    # (TraceAwsCalls=true sets POWERTOOLS_TRACE_DISABLED=false)
    daemon = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    daemon.bind(("127.0.0.1", 0))
    daemon.settimeout(60)
    code = """
import boto3
from botocore.config import Config
from notifications.observability import tracer

@tracer.capture_lambda_handler
def handler(event, context):
    sqs = boto3.client("sqs", endpoint_url="http://127.0.0.1:9",
                       config=Config(retries={"total_max_attempts": 1}, connect_timeout=5))
    try:
        sqs.list_queues()
    except Exception:
        pass
    return {"handled": event["n"]}

print(handler({"n": 7}, None))
"""
    with daemon:
        # When the handler runs
        lines = run_in_function(
            "sender",
            code,
            POWERTOOLS_TRACE_DISABLED="false",
            AWS_XRAY_DAEMON_ADDRESS=f"127.0.0.1:{daemon.getsockname()[1]}",
            _X_AMZN_TRACE_ID=TRACE_HEADER,
        )
        documents = []
        while not any(d.get("name") == "## handler" for d in documents):
            datagram = daemon.recv(65536).decode()
            documents.append(json.loads(datagram.split("\n", 1)[1]))
    # Then it returns what the handler returned
    assert lines[-1] == "{'handled': 7}"
    # And the daemon got the SQS call (patched boto3) and the handler's own subsegment
    by_name = {d["name"]: d for d in documents}
    handler = by_name["## handler"]
    assert by_name["sqs"]["namespace"] == "aws"
    assert by_name["sqs"]["aws"]["operation"] == "ListQueues"
    assert by_name["sqs"]["parent_id"] == handler["id"]
    assert handler["trace_id"] == "1-5759e988-bd862e3fe1be46a994272793"
    assert handler["annotations"] == {"ColdStart": True, "Service": "notifications"}
    assert handler["metadata"]["notifications"]["handler response"] == {"handled": 7}


def test_tracing_off_leaves_the_handler_as_it_is(monkeypatch):
    # Given tracing switched off as the template does by default
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("LAMBDA_TASK_ROOT", "/var/task")
    from notifications.observability import LambdaTracer

    def handler(event, context):
        return {"n": event["n"]}

    # When the handler is decorated
    decorated = LambdaTracer().capture_lambda_handler(handler)
    # Then it is the handler itself, answering as before
    assert decorated is handler
    assert decorated({"n": 3}, None) == {"n": 3}


@pytest.mark.parametrize(
    ("variables", "enabled"),
    [
        ({"POWERTOOLS_TRACE_DISABLED": "false", "LAMBDA_TASK_ROOT": "/var/task"}, True),
        ({"LAMBDA_TASK_ROOT": "/var/task"}, True),
        ({"POWERTOOLS_TRACE_DISABLED": "true", "LAMBDA_TASK_ROOT": "/var/task"}, False),
        ({"POWERTOOLS_TRACE_DISABLED": "1", "LAMBDA_TASK_ROOT": "/var/task"}, False),
        ({"POWERTOOLS_TRACE_DISABLED": "false"}, False),  # not in Lambda
        (
            {
                "POWERTOOLS_TRACE_DISABLED": "false",
                "LAMBDA_TASK_ROOT": "/var/task",
                "AWS_SAM_LOCAL": "true",
            },
            False,
        ),
    ],
)
def test_tracing_is_on_where_powertools_would_trace(monkeypatch, variables, enabled):
    from notifications.observability import tracing_enabled

    for name in ("POWERTOOLS_TRACE_DISABLED", "LAMBDA_TASK_ROOT", "AWS_SAM_LOCAL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert tracing_enabled() is enabled


def sender_settings(**variables: str) -> SenderSettings:
    return SenderSettings.from_env({**load_event("env.json")["SenderFunction"], **variables})


def test_providers_are_built_once_per_channel():
    providers = build_providers(sender_settings())
    # Then every channel has a provider, the same one each time it is asked for
    assert set(providers) == set(Channel)
    assert len(providers) == 4
    assert all(providers[channel] is providers[channel] for channel in Channel)


def test_fault_injection_draws_from_one_seeded_generator_in_send_order():
    # Given FAILURE_RATE with a seed
    providers = build_providers(sender_settings(FAILURE_RATE="0.5", FAILURE_SEED="7"))
    # When channels are first used in any order
    sms, email = providers[Channel.SMS], providers[Channel.EMAIL]
    assert isinstance(sms, FaultInjectingProvider)
    assert isinstance(email, FaultInjectingProvider)
    # Then they share one generator seeded with FAILURE_SEED, so which sends fail depends
    # on the order of sends alone, as when all providers were built up front
    reference = random.Random(7)
    assert sms.rng is email.rng is providers[Channel.WEBHOOK].rng
    assert [email.rng.random(), sms.rng.random()] == [reference.random(), reference.random()]
    assert email.failure_rate == 0.5


# The layer's only dataclasses a cold start may define (issue 18, item 5, session 7): defining
# a frozen dataclass generates and compiles its methods, about 3.4 M instructions each against
# 0.15 M for a msgspec struct, so every other value class on a cold path is a struct.
COLD_DATACLASSES = {
    "notifications.models.QuietHours",  # a field of the msgspec records, decoded as a dataclass
    # The fan-out reads the webhook subscriptions through the webhook channel's store, so it
    # loads that module (its subscription, provider and pinned-address types) at cold start.
    "notifications.channels.ssrf.HttpResponse",
    "notifications.channels.ssrf.Target",
    "notifications.channels.webhook.WebhookProvider",
    "notifications.channels.webhook.WebhookSubscription",
}


@pytest.mark.parametrize("function", sorted(set(FUNCTIONS) - {"preference_center"}))
def test_a_cold_start_defines_no_other_dataclass_of_the_layer(function):
    # When the handler module is imported (its settings, stages, adapters built)
    code = """
import dataclasses, inspect, json, sys
import app
print(json.dumps(sorted(
    f"{name}.{cls.__qualname__}"
    for name, module in list(sys.modules.items()) if name.startswith("notifications")
    for cls in vars(module).values()
    if inspect.isclass(cls) and cls.__module__ == name and dataclasses.is_dataclass(cls)
)))
"""
    defined = set(json.loads(run_in_function(function, code)[-1]))
    # Then the layer's value classes it loaded are msgspec structs, but for the listed few
    assert defined <= COLD_DATACLASSES, sorted(defined - COLD_DATACLASSES)


def test_the_sender_cold_start_leaves_unused_stages_for_first_use():
    # Given the sender's environment: no modelled latency, no fault injection
    # When the handler module is imported, and then a request with quiet hours comes
    code = f"""
import app
{loaded("notifications.channels.latency", "notifications.channels.faults", "zoneinfo")}
from datetime import UTC, datetime
from notifications.contracts import parse_request
from notifications.quiet_hours import QuietHoursPolicy
from tests.samples import welcome
body = welcome(1).model_dump_json()[:-1] + (
    ',"quiet_hours":{{"start":"22:00:00","end":"07:30:00","timezone":"America/New_York"}}}}')
request = parse_request(body)
print(QuietHoursPolicy().deferral(request, datetime(2026, 11, 28, 12, 0, tzinfo=UTC)))
{loaded("zoneinfo")}
"""
    lines = run_in_function(
        "sender", code, PYTHONPATH=f"{ROOT / 'layers' / 'notifications'}:{ROOT}"
    )
    # Then the cold start loaded neither the latency model, the fault injection nor zoneinfo
    assert json.loads(lines[0]) == []
    # And a request inside its quiet hours (07:00 in New York) still waits for their end,
    # 07:30 New York time, loading zoneinfo on that first use
    assert lines[1] == "2026-11-28 07:30:00-05:00"
    assert json.loads(lines[2]) == ["zoneinfo"]


def test_modelled_latency_and_fault_injection_still_wrap_the_providers():
    from notifications.channels.faults import FaultInjectingProvider
    from notifications.channels.latency import LatencyInjectingProvider

    # Given PROVIDER_LATENCY for email and FAILURE_RATE (the modules load on this first use)
    providers = build_providers(
        sender_settings(PROVIDER_LATENCY="email=fixed:5", FAILURE_RATE="0.5", FAILURE_SEED="7")
    )
    # Then the email provider is fault-injected around its modelled latency; SMS has no model
    email, sms = providers[Channel.EMAIL], providers[Channel.SMS]
    assert isinstance(email, FaultInjectingProvider)
    assert isinstance(email.inner, LatencyInjectingProvider)
    assert not isinstance(sms.inner, LatencyInjectingProvider)


def test_a_bad_latency_model_is_still_refused_when_the_settings_are_read():
    # When PROVIDER_LATENCY names an unknown channel
    with pytest.raises(SettingsError, match="PROVIDER_LATENCY: unknown channel 'fax'"):
        sender_settings(PROVIDER_LATENCY="fax=fixed:5")
