"""Least privilege and encryption, checked on the CloudFormation the SAM template translates to
(``notifyctl.local.translate``), plus cfn-lint with the serverless rules on that same output.

Every grant whose resource is not one of the stack's own ARNs is listed in EXCEPTIONS with the
reason; a new one fails the test until it is justified here and in docs/reliability.md.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from notifyctl.local.translate import load_template, translate
from tests.conftest import TEMPLATE

STAGE_NAME = "notifications-${Stage}"
OWN_ACCOUNT = "${AWS::AccountId}"

# (role, action) granted on a resource that is not one of the stack's own ARNs, and why.
EXCEPTIONS = {
    ("SenderFunctionRole", "sns:Publish"): (
        "*",
        "SMS is sns:Publish to a phone number, which has no ARN: IAM accepts only '*'",
    ),
    ("SenderFunctionRole", "lambda:ListEventSourceMappings"): (
        "*",
        "ListEventSourceMappings supports no resource-level permissions",
    ),
    ("BreakerCheckFunctionRole", "lambda:ListEventSourceMappings"): (
        "*",
        "ListEventSourceMappings supports no resource-level permissions",
    ),
}
# Mapping ARNs are random UUIDs chosen by Lambda, so these name event-source-mapping:* in the
# own account and region, narrowed by a lambda:FunctionArn condition to the sender function.
CONDITIONED_ON_SENDER = {
    ("SenderFunctionRole", "lambda:UpdateEventSourceMapping"),
    ("BreakerCheckFunctionRole", "lambda:UpdateEventSourceMapping"),
}
# The breaker check reads the sender's four mappings by their ARNs (no condition key).
SENDER_MAPPINGS = {
    "SenderFunctionEmailQueueEvent",
    "SenderFunctionSmsQueueEvent",
    "SenderFunctionPushQueueEvent",
    "SenderFunctionWebhookQueueEvent",
}
# GetEventSourceMapping is read-only; the sender's grant is account-wide over mappings.
READ_ONLY_MAPPINGS = {("SenderFunctionRole", "lambda:GetEventSourceMapping")}
# AWS managed policies SAM attaches, and why they stay.
MANAGED = {
    "AWSLambdaBasicExecutionRole": "CloudWatch Logs for the function's own output (logs:* on "
    "log groups; each function's group is named in the template)",
    "AWSXrayWriteOnlyAccess": "Tracing: Active; X-Ray has no resource-level permissions",
}
# What a Lambda event source mapping polls an SQS queue with (it runs with the function's role).
POLLER_ACTIONS = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}

# What each function (and the scheduler role) can reach: logical ids of the stack's resources,
# or the stack-named patterns it owns.
EXPECTED_REACH = {
    "FanOutFunctionRole": {
        "FanOutQueue",
        "EmailQueue",
        "SmsQueue",
        "PushQueue",
        "WebhookQueue",
        "EventsDLQ",
        "LedgerTable",
        "PreferencesTable",
        "WebhookSubscriptionsTable",
    },
    "SenderFunctionRole": {
        "EmailQueue",
        "SmsQueue",
        "PushQueue",
        "WebhookQueue",
        "NotificationsDLQ",
        "LedgerTable",
        "PolicyStateTable",
        "PreferencesTable",
        "WebhookSubscriptionsTable",
        "AttachmentsBucket",
        "EmailConfigurationSet",
        "DeferralSchedulerRole",
        "ses:identity/${SenderEmail}",
        "ses:identity/<domain of SenderEmail>",
        "secretsmanager:secret:notifications/${Stage}/webhooks/*",
        "PreferenceLinkSecret",
        "scheduler:schedule/notifications-${Stage}-deferrals/*",
        "lambda:event-source-mapping:*",
    },
    "BreakerCheckFunctionRole": {
        "PolicyStateTable",
        "lambda:event-source-mapping:*",
        *SENDER_MAPPINGS,
    },
    # (channel fallback: the user's chain from preferences, the successor onto a channel queue)
    "DlqAlarmFunctionRole": {
        "NotificationsDLQ",
        "AlertsTopic",
        "AlertsKey",
        "LedgerTable",
        "PreferencesTable",
        "EmailQueue",
        "SmsQueue",
        "PushQueue",
    },
    # (channel fallback on a permanent bounce: the successor onto a channel queue)
    "DeliveryFeedbackFunctionRole": {
        "LedgerTable",
        "PreferencesTable",
        "EventsDLQ",
        "EmailQueue",
        "SmsQueue",
        "PushQueue",
    },
    "DeferralSchedulerRole": {"EmailQueue", "SmsQueue", "PushQueue", "WebhookQueue"},
    # The preference center: its users' items, one audit item per change, the link keys.
    "PreferenceCenterFunctionRole": {"PreferencesTable", "LedgerTable", "PreferenceLinkSecret"},
}


@cache
def cfn() -> dict[str, Any]:
    return translate(load_template(TEMPLATE), {})


def resources_of(kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in cfn()["Resources"].items() if v["Type"] == kind}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def statements() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for role_id, role in resources_of("AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            for statement in as_list(policy["PolicyDocument"]["Statement"]):
                found.append((role_id, statement))
    return found


def targets(resource: Any) -> set[str]:
    """What a Resource entry names: stack logical ids it references, or a named pattern."""
    logical_ids = set(cfn()["Resources"])
    if resource == "*":
        return {"*"}
    if isinstance(resource, dict) and "Fn::GetAtt" in resource:
        return {resource["Fn::GetAtt"][0]}
    if isinstance(resource, dict) and "Ref" in resource:
        return {resource["Ref"]}
    if isinstance(resource, dict) and "Fn::Sub" in resource:
        body = resource["Fn::Sub"]
        text, variables = (body, {}) if isinstance(body, str) else (body[0], body[1])
        found: set[str] = set()
        for name, value in variables.items():
            if isinstance(value, dict) and "Fn::Sub" in value:  # nested: the inner pattern
                return targets(value)
            if isinstance(value, dict) and "Fn::Select" in value:  # the SenderEmail's domain
                text = text.replace(f"${{{name}}}", "<domain of SenderEmail>")
                continue
            referenced = targets(value) & logical_ids
            if referenced:
                found |= referenced
            elif isinstance(value, dict) and "Ref" in value:  # a parameter
                text = text.replace(f"${{{name}}}", f"${{{value['Ref']}}}")
        for name in re.findall(r"\$\{([A-Za-z0-9]+)(?:\.[A-Za-z0-9.]+)?\}", text):  # X, X.Arn
            if name in logical_ids:
                found.add(name)
        if found:
            return found
        # A pattern of the stack's own naming, in its own account: service:resource-part
        assert OWN_ACCOUNT in text, text
        service = re.match(r"arn:\$\{AWS::Partition\}:([a-z0-9-]+):", text).group(1)
        tail = text.split(f"{OWN_ACCOUNT}:", 1)[1]
        return {f"{service}:{tail}"}
    raise AssertionError(f"unrecognised resource {resource!r}")


def test_no_action_is_a_wildcard():
    for role_id, statement in statements():
        for action in as_list(statement["Action"]):
            assert action != "*", role_id
            assert not action.endswith(":*"), (role_id, action)
            # Prefix wildcards are allowed only where they stay within one family of calls:
            # SendMessage(+Batch), and the GenerateDataKey calls SNS makes for an encrypted topic
            if "*" in action:
                assert action in ("sqs:SendMessage*", "kms:GenerateDataKey*"), (role_id, action)


def test_every_resource_is_the_stacks_own_or_a_listed_exception():
    exceptions_used = set()
    for role_id, statement in statements():
        assert statement["Effect"] == "Allow"
        for action in as_list(statement["Action"]):
            for resource in as_list(statement["Resource"]):
                names = targets(resource)
                if "*" in names:
                    assert (role_id, action) in EXCEPTIONS, (role_id, action)
                    exceptions_used.add((role_id, action))
                    continue
                for name in names:
                    if name == "lambda:event-source-mapping:*":
                        if (role_id, action) in CONDITIONED_ON_SENDER:
                            condition = json.dumps(statement.get("Condition", {}))
                            assert "lambda:FunctionArn" in condition
                            assert "notifications-${Stage}-sender" in condition
                        else:
                            assert (role_id, action) in READ_ONLY_MAPPINGS, (role_id, action)
                        continue
                    assert (
                        name in cfn()["Resources"]
                        or "${Stage}" in name
                        or name.startswith("ses:identity/")
                    ), (role_id, action, name)
    # Every listed exception is still needed (a stale one would hide a new grant)
    assert exceptions_used == set(EXCEPTIONS)
    # And iam:PassRole is limited to the scheduler role, passed to Scheduler only
    (pass_role,) = [s for _, s in statements() if "iam:PassRole" in as_list(s["Action"])]
    assert pass_role["Resource"] == {"Fn::GetAtt": ["DeferralSchedulerRole", "Arn"]}
    assert pass_role["Condition"] == {
        "StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}
    }


def test_each_function_reaches_only_what_it_uses():
    reach: dict[str, set[str]] = {}
    for role_id, statement in statements():
        for resource in as_list(statement["Resource"]):
            reach.setdefault(role_id, set()).update(targets(resource) - {"*"})
    assert reach == EXPECTED_REACH
    # And each function runs with its own role
    for function_id, function in resources_of("AWS::Lambda::Function").items():
        assert function["Properties"]["Role"] == {"Fn::GetAtt": [f"{function_id}Role", "Arn"]}


def test_managed_policies_are_the_known_ones():
    for role_id, role in resources_of("AWS::IAM::Role").items():
        for arn in role["Properties"].get("ManagedPolicyArns", []):
            assert managed_policy_name(arn) in MANAGED, (role_id, arn)


def managed_policy_name(arn: Any) -> str:
    """The name in a managed policy ARN, written as SAM does or as !Sub with the partition."""
    text = arn["Fn::Sub"] if isinstance(arn, dict) else arn
    assert isinstance(text, str), arn
    assert re.match(r"arn:(aws|\$\{AWS::Partition\}):iam::aws:policy/", text), arn
    return text.rsplit("/", 1)[-1]


def test_no_role_can_read_every_queue_in_the_account():
    # Given every role of the translated stack, the SQS-polling ones included
    roles = resources_of("AWS::IAM::Role")
    assert {"FanOutFunctionRole", "SenderFunctionRole", "DlqAlarmFunctionRole"} <= set(roles)
    for role_id, role in roles.items():
        # Then none carries SAM's AWSLambdaSQSQueueExecutionRole (receive/delete on "*")
        names = {managed_policy_name(a) for a in role["Properties"].get("ManagedPolicyArns", [])}
        assert "AWSLambdaSQSQueueExecutionRole" not in names, role_id
    # And no statement grants an SQS action on "*"
    for role_id, statement in statements():
        if any(action.startswith("sqs:") for action in as_list(statement["Action"])):
            assert "*" not in as_list(statement["Resource"]), role_id


def sqs_event_sources(function_id: str) -> set[str]:
    """The queues the function's event source mappings poll, as logical ids."""
    return {
        mapping["Properties"]["EventSourceArn"]["Fn::GetAtt"][0]
        for mapping in resources_of("AWS::Lambda::EventSourceMapping").values()
        if mapping["Properties"]["FunctionName"] == {"Ref": function_id}
    }


def queues_granted(role_id: str, action: str) -> set[str]:
    """The queues (logical ids, or "*") a role may call ``action`` on, managed policies included."""
    role = cfn()["Resources"][role_id]["Properties"]
    managed = {managed_policy_name(a) for a in role.get("ManagedPolicyArns", [])}
    granted: set[str] = set()
    if "AWSLambdaSQSQueueExecutionRole" in managed and action in POLLER_ACTIONS:
        granted.add("*")  # that policy grants the poller actions on every queue
    for found_role, statement in statements():
        if found_role == role_id and action in as_list(statement["Action"]):
            for resource in as_list(statement["Resource"]):
                granted |= targets(resource)
    return granted


@pytest.mark.parametrize(
    ("function_id", "own_queues"),
    [
        ("SenderFunction", {"EmailQueue", "SmsQueue", "PushQueue", "WebhookQueue"}),
        ("DlqAlarmFunction", {"NotificationsDLQ"}),
        ("FanOutFunction", {"FanOutQueue"}),
    ],
)
def test_the_pollers_may_receive_and_delete_only_their_own_queues(function_id, own_queues):
    # Given the function's SQS event sources: the queues it polls
    assert sqs_event_sources(function_id) == own_queues
    role_id = f"{function_id}Role"
    # Then each poller action names exactly those queues: every one of them (the mapping can
    # poll) and no other (not each other's, not EventsDLQ, not "*")
    for action in sorted(POLLER_ACTIONS):
        assert queues_granted(role_id, action) == own_queues, (role_id, action)
    # And the sender's backoff may change the visibility of its own queues only
    expected_visibility = own_queues if function_id == "SenderFunction" else set()
    assert queues_granted(role_id, "sqs:ChangeMessageVisibility") == expected_visibility


def test_the_fan_out_cannot_write_the_notifications_dlq():
    reach = set()
    for role_id, statement in statements():
        if role_id == "FanOutFunctionRole":
            for resource in as_list(statement["Resource"]):
                reach |= targets(resource)
    assert "NotificationsDLQ" not in reach


def test_the_fan_out_may_send_only_to_the_channel_queues_and_events_dlq():
    # Given the fan-out role's SQS sends
    sends = queues_granted("FanOutFunctionRole", "sqs:SendMessage")
    # Then it enqueues to the channel queues and rejects into EventsDLQ, and nowhere else (not
    # its own buffer: a failed event goes back by the batch response, not by a resend)
    assert sends == {"EmailQueue", "SmsQueue", "PushQueue", "WebhookQueue", "EventsDLQ"}
    # And its DynamoDB actions are the calls it makes: SUPPRESSED records, the batch's
    # preferences and a new user's first ones, the webhook subscriptions
    granted: dict[str, set[str]] = {}
    for role_id, statement in statements():
        if role_id != "FanOutFunctionRole":
            continue
        for action in as_list(statement["Action"]):
            if action.startswith("dynamodb:"):
                for resource in as_list(statement["Resource"]):
                    granted.setdefault(action, set()).update(targets(resource))
    assert granted == {
        "dynamodb:PutItem": {"LedgerTable", "PreferencesTable"},
        "dynamodb:BatchGetItem": {"PreferencesTable"},
        "dynamodb:Scan": {"WebhookSubscriptionsTable"},
    }


def test_queues_topic_bus_tables_and_bucket_are_encrypted_and_tables_recoverable():
    for queue_id, queue in resources_of("AWS::SQS::Queue").items():
        properties = queue["Properties"]
        assert properties.get("SqsManagedSseEnabled") is True or properties.get("KmsMasterKeyId"), (
            queue_id
        )
    # Topics: a customer managed key of the stack, rotated (CloudWatch alarms cannot publish to
    # a topic under the AWS managed alias/aws/sns, whose policy cannot admit them)
    keys = resources_of("AWS::KMS::Key")
    for topic_id, topic in resources_of("AWS::SNS::Topic").items():
        key = topic["Properties"].get("KmsMasterKeyId")
        assert isinstance(key, dict), (topic_id, key)
        assert key.get("Ref") in keys, (topic_id, key)
        assert keys[key["Ref"]]["Properties"]["EnableKeyRotation"] is True, topic_id
    # EventBridge encrypts every event at rest with an AWS owned key and offers no way to turn
    # that off; a customer managed key (KmsKeyIdentifier) is optional. Nothing else to check
    # but that the bus does not point at some other account's key.
    for bus_id, bus in resources_of("AWS::Events::EventBus").items():
        key = bus["Properties"].get("KmsKeyIdentifier")
        assert key is None or "${AWS::AccountId}" in json.dumps(key), bus_id
    for table_id, table in resources_of("AWS::DynamoDB::Table").items():
        properties = table["Properties"]
        assert properties["SSESpecification"]["SSEEnabled"] is True, table_id
        assert (
            properties["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
        ), table_id
    for bucket_id, bucket in resources_of("AWS::S3::Bucket").items():
        properties = bucket["Properties"]
        assert properties["BucketEncryption"]["ServerSideEncryptionConfiguration"], bucket_id
        assert all(properties["PublicAccessBlockConfiguration"].values()), bucket_id


# cfn-lint serverless rules (cfn-lint-serverless) findings that are deliberate, and why.
# The Makefile's `validate` target ignores the same rule ids on template.yaml.
SERVERLESS_RULES_JUSTIFIED = {
    # EventsDLQ and NotificationsDLQ *are* the dead-letter queues: nothing to redrive them to.
    ("ES6000", "EventsDLQ"),
    ("ES6000", "NotificationsDLQ"),
    # Each function logs to its own AWS::Logs::LogGroup with RetentionInDays through
    # LoggingConfig.LogGroup, which the rule does not follow.
    ("WS1004", "FanOutFunction"),
    ("WS1004", "SenderFunction"),
    ("WS1004", "BreakerCheckFunction"),
    ("WS1004", "DlqAlarmFunction"),
    ("WS1004", "DeliveryFeedbackFunction"),
    ("WS1004", "PreferenceCenterFunction"),
    # The breaker check runs every minute and is idempotent: a failed tick is repaired by the
    # next, and a DLQ of stale ticks would hold nothing worth replaying.
    ("ES1007", "BreakerCheckFunction"),
    ("ES4000", "BreakerCheckFunction"),
    # Alert emails: the ledger keeps every dead letter and the DeadLetters alarm fires too, so a
    # lost alert email loses no information.
    ("ES7000", "AlertEmailSubscription"),
    ("ES1007", "BreakerCheckFunctionEveryMinutePermission"),
    ("ES4000", "BreakerCheckFunctionEveryMinute"),
    # The feedback function is invoked by EventBridge (SES events) and by CloudWatch Logs (SMS
    # delivery status), by design.
    ("WS1002", "DeliveryFeedbackFunction"),
    # OnFailure destinations apply to stream and Kafka sources; an SQS source's failures are
    # kept by the queue's own RedrivePolicy (channel queues -> NotificationsDLQ), and
    # NotificationsDLQ is the end of the line (messages stay 14 days, DlqOldestMessage alarms).
    ("ES1001", "SenderFunctionEmailQueueEvent"),
    ("ES1001", "SenderFunctionSmsQueueEvent"),
    ("ES1001", "SenderFunctionPushQueueEvent"),
    ("ES1001", "SenderFunctionWebhookQueueEvent"),
    ("ES1001", "DlqAlarmFunctionNotificationsDLQEvent"),
    # FanOutQueue redrives to EventsDLQ after maxReceiveCount (3) receives.
    ("ES1001", "FanOutFunctionFanOutQueueEvent"),
    # Style only: a Fn::Sub without variables in the translator's output.
    ("W1020", "*"),
}


@pytest.mark.skipif(
    shutil.which("cfn-lint", path=str(Path(sys.executable).parent)) is None,
    reason="cfn-lint is a dev dependency; install with pip install -e '.[dev]'",
)
def test_cfn_lint_and_serverless_rules_on_the_translated_template(tmp_path):
    pytest.importorskip("cfn_lint_serverless", reason="dev dependency cfn-lint-serverless")
    template = tmp_path / "translated.json"
    template.write_text(json.dumps(cfn()))
    sam = tmp_path / "template.yaml"
    sam.write_text(TEMPLATE.read_text())
    cfn_lint = str(Path(sys.executable).parent / "cfn-lint")

    def findings(path: Path) -> set[tuple[str, str]]:
        completed = subprocess.run(
            [cfn_lint, str(path), "-a", "cfn_lint_serverless.rules", "--format", "parseable"],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert completed.returncode in (0, 2, 4, 6, 8, 10, 12, 14), completed.stderr
        found = set()
        for line in completed.stdout.splitlines():
            # path:line:col:line:col:RULE:message
            parts = line.split(":", 6)
            rule, message = parts[5], parts[6]
            assert rule[0] in "WI" or rule.startswith("ES"), line  # no cfn-lint error (E0..E9)
            names = re.findall(r"\b([A-Z][A-Za-z0-9]+)\b", message)
            subject = next((n for n in names if n in cfn()["Resources"]), "*")
            found.add((rule, subject))
        return found

    # The translated template: plain CloudFormation, what moto (and AWS, after the transform) get
    translated = findings(template)
    assert translated <= SERVERLESS_RULES_JUSTIFIED, translated - SERVERLESS_RULES_JUSTIFIED
    # The SAM source: cfn-lint applies the transform itself, and the serverless rules see the
    # SAM resources (some rules only fire there)
    source = findings(sam)
    assert source <= SERVERLESS_RULES_JUSTIFIED, source - SERVERLESS_RULES_JUSTIFIED
