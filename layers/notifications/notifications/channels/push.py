"""Mobile push through SNS platform endpoints: APNs and FCM payload builders."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import ClientError

from notifications.adapters.aws import LazyClient
from notifications.channels.aws_errors import classify_aws_error, error_code, error_message
from notifications.channels.base import ProviderReceipt, RenderedMessage
from notifications.errors import PermanentError
from notifications.masking import mask
from notifications.models import NotificationRequested

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient

Platform = Literal["APNS", "APNS_SANDBOX", "GCM"]
PLATFORMS: tuple[Platform, ...] = ("APNS", "APNS_SANDBOX", "GCM")
_ENDPOINT_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:endpoint/([A-Z_]+)/[^/]+/[^/]+$")
# APNs and FCM both refuse payloads above 4 KB.
MAX_PLATFORM_PAYLOAD_BYTES = 4096

SNS_PUSH_PERMANENT_CODES = {
    "EndpointDisabled": "endpoint_disabled",
    "NotFound": "endpoint_disabled",
    "PlatformApplicationDisabled": "platform_application_disabled",
    "AuthorizationError": "provider_unauthorized",
}


def platform_of(endpoint_arn: str) -> Platform:
    """The platform of an SNS endpoint ARN (``...:endpoint/APNS/<app>/<id>``)."""
    match = _ENDPOINT_ARN.match(endpoint_arn)
    if not match:
        raise PermanentError("invalid_recipient", f"not an SNS endpoint ARN ({mask(endpoint_arn)})")
    platform = match.group(1)
    if platform not in PLATFORMS:
        raise PermanentError("unsupported_platform", f"push platform {platform} is not supported")
    return platform


def _custom_data(request: NotificationRequested, message: RenderedMessage) -> dict[str, Any]:
    data: dict[str, Any] = dict(message.payload)
    data["notification_id"] = request.notification_id
    if message.deep_link:
        data["deep_link"] = message.deep_link
    return data


def apns_payload(request: NotificationRequested, message: RenderedMessage) -> dict[str, Any]:
    """APNs: the alert in ``aps``; custom data (deep link included) as top-level keys, which
    the app reads from ``userInfo``."""
    alert: dict[str, str] = {"body": message.text}
    if message.title:
        alert["title"] = message.title
    aps: dict[str, Any] = {"alert": alert, "sound": "default"}
    if message.badge is not None:
        aps["badge"] = message.badge
    payload = _custom_data(request, message)
    payload.pop("aps", None)
    return {"aps": aps, **payload}


def fcm_payload(request: NotificationRequested, message: RenderedMessage) -> dict[str, Any]:
    """FCM HTTP v1 (``fcmV1Message``): a notification message plus ``data``. FCM data values
    must be strings, so other values are sent as JSON text."""
    notification: dict[str, str] = {"body": message.text}
    if message.title:
        notification["title"] = message.title
    data = {
        key: value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        for key, value in _custom_data(request, message).items()
    }
    android_notification: dict[str, Any] = {}
    if message.badge is not None:
        android_notification["notification_count"] = message.badge
    body: dict[str, Any] = {"notification": notification, "data": data}
    if android_notification:
        body["android"] = {"notification": android_notification}
    return {"fcmV1Message": {"message": body}}


def sns_message(
    platform: Platform, request: NotificationRequested, message: RenderedMessage
) -> str:
    """The ``Message`` of a ``MessageStructure=json`` publish: the platform's payload encoded
    as a string under its platform key, plus the ``default`` text SNS requires."""
    builders: Mapping[Platform, Callable[..., dict[str, Any]]] = {
        "APNS": apns_payload,
        "APNS_SANDBOX": apns_payload,
        "GCM": fcm_payload,
    }
    encoded = json.dumps(
        builders[platform](request, message), separators=(",", ":"), ensure_ascii=False
    )
    if len(encoded.encode()) > MAX_PLATFORM_PAYLOAD_BYTES:
        raise PermanentError(
            "payload_too_large", f"{platform} payload exceeds {MAX_PLATFORM_PAYLOAD_BYTES} bytes"
        )
    return json.dumps({"default": message.text, platform: encoded}, ensure_ascii=False)


class SnsPushProvider:
    """Publishes to an SNS platform endpoint (the request's recipient). A disabled or deleted
    endpoint raises ``PermanentError('endpoint_disabled')`` so the caller can drop it."""

    def __init__(self, *, client_factory: Callable[[], SNSClient] | None = None) -> None:
        self._sns: LazyClient[SNSClient] = LazyClient("sns", client_factory)

    def send(self, request: NotificationRequested, message: RenderedMessage) -> ProviderReceipt:
        platform = platform_of(request.recipient)
        if not message.text:
            raise PermanentError("message_incomplete", "a push notification needs a body")
        body = sns_message(platform, request, message)
        try:
            response = self._sns().publish(
                TargetArn=request.recipient, Message=body, MessageStructure="json"
            )
        except Exception as error:
            raise _classify(error) from error
        return ProviderReceipt(
            provider_message_id=response["MessageId"], detail={"platform": platform}
        )


def _classify(error: Exception) -> Exception:
    if isinstance(error, ClientError) and error_code(error) in ("InvalidParameter", "NotFound"):
        text = error_message(error).lower()
        if error_code(error) == "NotFound" or "endpoint" in text or "targetarn" in text:
            return PermanentError("endpoint_disabled", f"{error_code(error)}: {text[:200]}")
    return classify_aws_error(error, SNS_PUSH_PERMANENT_CODES)
