"""Email through SES v2: one raw MIME message with text, HTML and S3-held attachments."""

from __future__ import annotations

import re
from collections.abc import Callable
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formataddr, parseaddr
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from botocore.exceptions import ClientError
from email_validator import EmailNotValidError, validate_email

from notifications.aws import LazyClient
from notifications.channels.aws_errors import classify_aws_error, error_code
from notifications.channels.base import ProviderReceipt, RenderedMessage
from notifications.errors import PermanentError
from notifications.masking import mask_email
from notifications.models import AttachmentRef, NotificationRequested

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sesv2 import SESV2Client

# SES v2 accepts up to 40 MB per message; Lambda memory and the recipients' mail servers
# (many refuse above 10-25 MB) make a smaller default bound the safer one.
DEFAULT_MAX_MESSAGE_BYTES = 10 * 1024 * 1024
MAX_SUBJECT_CHARS = 998
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\u0085]+")
_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")

SES_PERMANENT_CODES = {
    "MessageRejected": "message_rejected",
    "MailFromDomainNotVerifiedException": "sender_not_verified",
    "AccountSuspendedException": "account_suspended",
    "SendingPausedException": "sending_paused",
    "BadRequestException": "provider_rejected",
    "InvalidParameterValue": "provider_rejected",
    "NotFoundException": "configuration_missing",
    "ConfigurationSetDoesNotExist": "configuration_missing",
}


def header_safe(value: str, limit: int = MAX_SUBJECT_CHARS) -> str:
    """A header value with every CR, LF and other control character folded to one space, so a
    rendered subject can never start a new header (CRLF injection)."""
    return _CONTROL.sub(" ", value).strip()[:limit]


def _tag_value(value: str) -> str:
    return _TAG_UNSAFE.sub("_", value)[:256] or "_"


class AttachmentStore(Protocol):
    """Fetches an attachment's bytes. ``max_bytes`` is the space left in the message."""

    def fetch(self, ref: AttachmentRef, max_bytes: int) -> bytes: ...


class S3AttachmentStore:
    """Reads attachments from S3; a missing object is permanent, throttling retryable."""

    def __init__(self, client_factory: Callable[[], S3Client] | None = None) -> None:
        self._s3: LazyClient[S3Client] = LazyClient("s3", client_factory)

    def fetch(self, ref: AttachmentRef, max_bytes: int) -> bytes:
        try:
            response = self._s3().get_object(Bucket=ref.bucket, Key=ref.key)
        except Exception as error:
            raise classify_aws_error(
                error,
                {
                    "NoSuchKey": "attachment_missing",
                    "NoSuchBucket": "attachment_missing",
                    "AccessDenied": "attachment_forbidden",
                    "404": "attachment_missing",
                },
            ) from error
        body = response["Body"]
        try:
            if int(response.get("ContentLength", 0)) > max_bytes:
                raise PermanentError(
                    "message_too_large", f"attachment {ref.filename!r} exceeds the message bound"
                )
            data = body.read(max_bytes + 1)
        finally:
            body.close()
        if len(data) > max_bytes:
            raise PermanentError(
                "message_too_large", f"attachment {ref.filename!r} exceeds the message bound"
            )
        return data


@lru_cache(maxsize=1024)
def validate_recipient(address: str) -> str:
    """The normalized address, or ``PermanentError('invalid_recipient')``. Cached: the sender
    checks each address up to three times (policy stage, message, destination)."""
    try:
        result = validate_email(address, check_deliverability=False)
    except EmailNotValidError as error:
        raise PermanentError(
            "invalid_recipient", f"not a valid email address ({mask_email(address)}): {error}"
        ) from None
    return str(result.normalized)


class SesEmailProvider:
    """Sends one notification as one raw MIME message through SES v2 ``SendEmail``.

    ``unsubscribe_url`` may hold ``{user_id}``, ``{notification_id}`` and ``{category}``
    placeholders (URL-quoted when filled in)."""

    def __init__(
        self,
        sender: str,
        configuration_set: str | None = None,
        attachments: AttachmentStore | None = None,
        unsubscribe_url: str | None = None,
        *,
        unsubscribe_mailto: str | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        client_factory: Callable[[], SESV2Client] | None = None,
    ) -> None:
        if _CONTROL.search(sender) or "@" not in parseaddr(sender)[1]:
            raise ValueError("sender must be one address without control characters")
        self.sender = sender
        self.configuration_set = configuration_set
        self.attachments = attachments
        self.unsubscribe_url = unsubscribe_url
        self.unsubscribe_mailto = unsubscribe_mailto
        self.max_message_bytes = max_message_bytes
        self._ses: LazyClient[SESV2Client] = LazyClient("sesv2", client_factory)

    def build_message(self, request: NotificationRequested, message: RenderedMessage) -> bytes:
        """The raw RFC 5322 message: multipart/mixed (when there are attachments) around a
        multipart/alternative of text and HTML. Raises ``PermanentError`` when it cannot be sent."""
        recipient = validate_recipient(request.recipient)
        subject = header_safe(message.subject or "")
        if not subject:
            raise PermanentError("message_incomplete", "an email needs a subject")
        if not message.text and not message.html:
            raise PermanentError("message_incomplete", "an email needs a text or an HTML body")

        mime = EmailMessage(policy=SMTP)
        mime["Subject"] = subject
        mime["From"] = self.sender
        mime["To"] = formataddr(("", recipient))
        mime["X-Notification-Id"] = request.notification_id
        unsubscribe = self._list_unsubscribe(request)
        if unsubscribe:
            mime["List-Unsubscribe"] = unsubscribe
            if self.unsubscribe_url:
                mime["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        mime.set_content(message.text or "", subtype="plain", charset="utf-8")
        if message.html:
            mime.add_alternative(message.html, subtype="html", charset="utf-8")

        # Serialized once per change (it is most of the sender's own CPU time per email).
        raw = mime.as_bytes()
        for ref in request.attachments:
            if self.attachments is None:
                raise PermanentError("attachments_unsupported", "no attachment store configured")
            budget = self.max_message_bytes - len(raw)
            # Base64 grows content by 4/3: bound the raw bytes by what fits once encoded.
            data = self.attachments.fetch(ref, max(0, budget * 3 // 4))
            maintype, _, subtype = ref.content_type.partition("/")
            if not maintype or not subtype or _CONTROL.search(ref.content_type):
                maintype, subtype = "application", "octet-stream"
            filename = header_safe(ref.filename, 255).replace("/", "_").replace("\\", "_")
            mime.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
            raw = mime.as_bytes()

        if len(raw) > self.max_message_bytes:
            raise PermanentError(
                "message_too_large",
                f"{len(raw)} bytes exceeds the bound of {self.max_message_bytes} bytes",
            )
        return raw

    def _list_unsubscribe(self, request: NotificationRequested) -> str | None:
        targets = []
        if self.unsubscribe_url:
            url = self.unsubscribe_url.format(
                user_id=quote(request.user_id or "", safe=""),
                notification_id=quote(request.notification_id, safe=""),
                category=quote(request.category, safe=""),
            )
            targets.append(f"<{header_safe(url)}>")
        if self.unsubscribe_mailto:
            targets.append(f"<mailto:{header_safe(self.unsubscribe_mailto)}>")
        return ", ".join(targets) or None

    def send(self, request: NotificationRequested, message: RenderedMessage) -> ProviderReceipt:
        raw = self.build_message(request, message)
        recipient = validate_recipient(request.recipient)
        kwargs: dict[str, Any] = {
            "FromEmailAddress": self.sender,
            "Destination": {"ToAddresses": [recipient]},
            "Content": {"Raw": {"Data": raw}},
            "EmailTags": [
                {"Name": "notification_id", "Value": _tag_value(request.notification_id)},
                {"Name": "category", "Value": _tag_value(request.category)},
            ],
        }
        if self.configuration_set:
            kwargs["ConfigurationSetName"] = self.configuration_set
        try:
            response = self._ses().send_email(**kwargs)
        except Exception as error:
            classified = classify_aws_error(error, SES_PERMANENT_CODES)
            rejected = isinstance(error, ClientError) and error_code(error) == "MessageRejected"
            if rejected and "verif" in str(error).lower():
                classified = PermanentError("sender_not_verified", classified.message)
            raise classified from error
        return ProviderReceipt(
            provider_message_id=response["MessageId"],
            detail={"size_bytes": str(len(raw)), "attachments": str(len(request.attachments))},
        )
