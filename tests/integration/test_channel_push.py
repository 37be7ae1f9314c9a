"""SNS mobile push on moto: delivery to an endpoint, and disabled or deleted endpoints."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import pytest
from moto.sns.models import sns_backends

from notifications.channels.base import RenderedMessage
from notifications.channels.push import SnsPushProvider
from notifications.errors import PermanentError
from notifications.models import Channel, NotificationRequested, notification_id

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
MESSAGE = RenderedMessage(
    title="Order shipped", text="Order 42 is on its way", badge=1, deep_link="shop://orders/42"
)


def make_request(endpoint_arn: str) -> NotificationRequested:
    return NotificationRequested(
        notification_id=notification_id("evt-4", Channel.PUSH, endpoint_arn, "shipped"),
        channel=Channel.PUSH,
        recipient=endpoint_arn,
        template_id="shipped",
        category="orders",
        event_id="evt-4",
        event_type="OrderPlaced",
        correlation_id="evt-4",
        occurred_at=NOW,
        requested_at=NOW,
    )


def endpoint(platform: str) -> str:
    sns = boto3.client("sns", region_name=REGION)
    application = sns.create_platform_application(
        Name=f"shop-{platform.lower()}", Platform=platform, Attributes={}
    )
    return sns.create_platform_endpoint(
        PlatformApplicationArn=application["PlatformApplicationArn"],
        Token=f"device-token-{platform}",
    )["EndpointArn"]


def provider() -> SnsPushProvider:
    return SnsPushProvider(client_factory=lambda: boto3.client("sns", region_name=REGION))


def delivered(endpoint_arn: str) -> dict[str, str]:
    return dict(sns_backends[ACCOUNT][REGION].platform_endpoints[endpoint_arn].messages)


@pytest.mark.usefixtures("moto_account")
@pytest.mark.parametrize(
    ("platform", "key"), [("APNS", "APNS"), ("APNS_SANDBOX", "APNS_SANDBOX"), ("GCM", "GCM")]
)
def test_a_push_reaches_an_enabled_endpoint(platform: str, key: str) -> None:
    # Given an enabled endpoint
    arn = endpoint(platform)

    # When a notification is pushed
    receipt = provider().send(make_request(arn), MESSAGE)

    # Then the endpoint holds the JSON-structured message under the receipt's id
    messages = delivered(arn)
    assert list(messages) == [receipt.provider_message_id]
    assert receipt.provider_message_id is not None
    structure = json.loads(messages[receipt.provider_message_id])
    assert structure["default"] == "Order 42 is on its way"
    assert key in structure


@pytest.mark.usefixtures("moto_account")
def test_a_disabled_endpoint_is_a_permanent_failure() -> None:
    # Given an endpoint APNs/FCM reported stale (SNS disables it)
    arn = endpoint("GCM")
    boto3.client("sns", region_name=REGION).set_endpoint_attributes(
        EndpointArn=arn, Attributes={"Enabled": "false"}
    )

    # When a notification is pushed, Then it fails permanently as endpoint_disabled
    with pytest.raises(PermanentError) as failure:
        provider().send(make_request(arn), MESSAGE)
    assert failure.value.reason == "endpoint_disabled"
    assert delivered(arn) == {}


@pytest.mark.usefixtures("moto_account")
def test_a_deleted_endpoint_is_a_permanent_failure() -> None:
    arn = endpoint("APNS")
    boto3.client("sns", region_name=REGION).delete_endpoint(EndpointArn=arn)
    with pytest.raises(PermanentError) as failure:
        provider().send(make_request(arn), MESSAGE)
    assert failure.value.reason == "endpoint_disabled"
