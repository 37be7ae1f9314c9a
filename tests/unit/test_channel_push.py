"""Push: the payload each platform receives, and how endpoint failures are classified."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from notifications.channels.base import RenderedMessage
from notifications.channels.push import SnsPushProvider, platform_of
from notifications.errors import NotificationError, PermanentError, RetryableError
from notifications.models import Channel, NotificationRequested

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
NID = "0b8a3c1e-8f4b-5a55-9a0e-2c5b7e9d1f00"
ENDPOINTS = "arn:aws:sns:eu-west-1:123456789012:endpoint"
ARNS = {
    "APNS": f"{ENDPOINTS}/APNS/shop-ios/1f3c5a7e-0000-4000-8000-000000000001",
    "APNS_SANDBOX": f"{ENDPOINTS}/APNS_SANDBOX/shop-ios-dev/1f3c5a7e-0000-4000-8000-000000000002",
    "GCM": f"{ENDPOINTS}/GCM/shop-android/1f3c5a7e-0000-4000-8000-000000000003",
}
MESSAGE = RenderedMessage(
    title="Order shipped",
    text="Order 42 is on its way",
    badge=3,
    deep_link="shop://orders/42",
    payload={"order_id": "42", "items": 2},
)


def make_request(recipient: str) -> NotificationRequested:
    return NotificationRequested(
        notification_id=NID,
        channel=Channel.PUSH,
        recipient=recipient,
        template_id="order-shipped",
        category="orders",
        event_id="evt-1",
        event_type="OrderPlaced",
        correlation_id="evt-1",
        occurred_at=NOW,
        requested_at=NOW,
    )


class FakeSns:
    def __init__(self, error: Exception | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.error = error

    def publish(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        if self.error is not None:
            raise self.error
        return {"MessageId": "sns-push-1"}


def provider(sns: FakeSns) -> SnsPushProvider:
    return SnsPushProvider(client_factory=lambda: sns)  # type: ignore[arg-type,return-value]


APNS_SNAPSHOT = {
    "aps": {
        "alert": {"title": "Order shipped", "body": "Order 42 is on its way"},
        "sound": "default",
        "badge": 3,
    },
    "order_id": "42",
    "items": 2,
    "notification_id": NID,
    "deep_link": "shop://orders/42",
}
FCM_SNAPSHOT = {
    "fcmV1Message": {
        "message": {
            "notification": {"title": "Order shipped", "body": "Order 42 is on its way"},
            "data": {
                "order_id": "42",
                "items": "2",
                "notification_id": NID,
                "deep_link": "shop://orders/42",
            },
            "android": {"notification": {"notification_count": 3}},
        }
    }
}


@pytest.mark.parametrize(
    ("platform", "snapshot"),
    [("APNS", APNS_SNAPSHOT), ("APNS_SANDBOX", APNS_SNAPSHOT), ("GCM", FCM_SNAPSHOT)],
)
def test_each_platform_receives_its_own_payload(platform: str, snapshot: dict[str, Any]) -> None:
    # Given an endpoint of a platform
    sns = FakeSns()

    # When a notification is pushed to it
    receipt = provider(sns).send(make_request(ARNS[platform]), MESSAGE)

    # Then SNS got a JSON-structured message whose platform key holds the expected payload
    call = sns.calls[0]
    assert call["TargetArn"] == ARNS[platform]
    assert call["MessageStructure"] == "json"
    structure = json.loads(call["Message"])
    assert set(structure) == {"default", platform}
    assert structure["default"] == "Order 42 is on its way"
    assert isinstance(structure[platform], str)  # SNS wants each platform payload as a string
    assert json.loads(structure[platform]) == snapshot
    assert receipt.provider_message_id == "sns-push-1"
    assert receipt.detail == {"platform": platform}


def test_a_plain_body_has_no_optional_fields() -> None:
    sns = FakeSns()
    provider(sns).send(make_request(ARNS["APNS"]), RenderedMessage(text="Hi"))
    apns = json.loads(json.loads(sns.calls[0]["Message"])["APNS"])
    assert apns == {"aps": {"alert": {"body": "Hi"}, "sound": "default"}, "notification_id": NID}


@pytest.mark.parametrize(
    "recipient",
    [
        "not-an-arn",
        "arn:aws:sns:eu-west-1:123456789012:my-topic",
        "arn:aws:sns:eu-west-1:123456789012:endpoint/ADM/app/1f3c5a7e",
    ],
)
def test_a_recipient_that_is_not_a_supported_endpoint_is_permanent(recipient: str) -> None:
    sns = FakeSns()
    with pytest.raises(PermanentError):
        provider(sns).send(make_request(recipient), MESSAGE)
    assert sns.calls == []


def test_a_payload_over_4kb_is_permanent() -> None:
    big = RenderedMessage(text="Hi", payload={"blob": "x" * 5000})
    with pytest.raises(PermanentError) as failure:
        provider(FakeSns()).send(make_request(ARNS["GCM"]), big)
    assert failure.value.reason == "payload_too_large"


def sns_error(code: str, message: str, status: int = 400) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},  # type: ignore[typeddict-item]
        },
        "Publish",
    )


@pytest.mark.parametrize(
    ("error", "kind", "reason"),
    [
        (
            sns_error("EndpointDisabled", "Endpoint is disabled"),
            PermanentError,
            "endpoint_disabled",
        ),
        (
            sns_error("NotFound", "Endpoint does not exist", 404),
            PermanentError,
            "endpoint_disabled",
        ),
        (
            sns_error("InvalidParameter", "Invalid parameter: TargetArn"),
            PermanentError,
            "endpoint_disabled",
        ),
        (sns_error("InvalidParameter", "Message too long"), PermanentError, "provider_rejected"),
        (
            sns_error("PlatformApplicationDisabled", "disabled"),
            PermanentError,
            "platform_application_disabled",
        ),
        (sns_error("Throttled", "slow down", 429), RetryableError, "provider_throttled"),
        (sns_error("InternalError", "oops", 500), RetryableError, "provider_unavailable"),
    ],
)
def test_endpoint_failures_are_classified(
    error: Exception, kind: type[NotificationError], reason: str
) -> None:
    with pytest.raises(kind) as failure:
        provider(FakeSns(error)).send(make_request(ARNS["GCM"]), MESSAGE)
    assert failure.value.reason == reason


def test_platform_is_read_from_the_endpoint_arn() -> None:
    assert platform_of(ARNS["APNS_SANDBOX"]) == "APNS_SANDBOX"
    assert platform_of(ARNS["GCM"].replace("arn:aws:", "arn:aws-cn:")) == "GCM"
