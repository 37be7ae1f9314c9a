"""Email through SES v2: one raw MIME message with text, HTML and S3-held attachments."""

from __future__ import annotations

import binascii
import random
import re
from collections.abc import Callable
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formataddr, parseaddr
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from botocore.exceptions import ClientError

from notifications.adapters.aws import LazyClient
from notifications.channels.aws_errors import classify_aws_error, error_code
from notifications.channels.base import ProviderReceipt, RenderedMessage
from notifications.errors import PermanentError
from notifications.masking import mask_email
from notifications.models import AttachmentRef, NotificationRequested

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sesv2 import SESV2Client

    from notifications.preference_links import PreferenceLinks

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


# -- the raw MIME message, written directly ------------------------------------------------------
# The stdlib's ``EmailMessage(policy=SMTP)`` parses and refolds every header through its
# header-value parser and walks a generator: about 2.6 ms per email, a quarter of the sender's
# own time. The message here has a fixed shape, so it is written out directly; the rare values
# the fast paths do not cover (a non-ASCII recipient, an unusual attachment type or filename,
# the configured From) go through the same stdlib policy as before.
_CRLF = "\r\n"
_MAX_LINE = 78  # RFC 5322's recommended line length, as the SMTP policy folds
_Q_WORD = "=?utf-8?q?{}?="
_Q_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+")
_MIME_TOKEN = re.compile(r"[A-Za-z0-9!#$&^_.+-]+")
_PLAIN_FILENAME = re.compile(r"[A-Za-z0-9 ._()+,-]+")
_BOUNDARY = "==============={:019d}=="  # the stdlib's shape; always 36 characters


def _q_encode(char: str) -> str:
    if char in _Q_SAFE:
        return char
    if char == " ":
        return "_"
    return "".join(f"={byte:02X}" for byte in char.encode("utf-8", "replace"))


def _encoded_words(name: str, value: str) -> str:
    """``value`` as RFC 2047 encoded words (UTF-8, Q), each line within 78 characters; words
    split between characters, never inside one."""
    room = _MAX_LINE - len(name) - 2 - len(_Q_WORD.format(""))
    words: list[str] = []
    current = ""
    for char in value:
        encoded = _q_encode(char)
        if current and len(current) + len(encoded) > room:
            words.append(current)
            current = ""
        current += encoded
    words.append(current)
    return f"{name}: " + "\r\n ".join(_Q_WORD.format(word) for word in words) + _CRLF


def unstructured_header(name: str, value: str) -> str:
    """``Name: value`` and CRLF for a free-text header (Subject): folded at spaces within 78
    characters; encoded words when the value is not ASCII, holds ``=?``, or has a word too long
    for a line. ``value`` must already be :func:`header_safe`."""
    if value.isascii() and "=?" not in value:
        line = f"{name}: {value}"
        if len(line) <= _MAX_LINE:
            return line + _CRLF
        lines: list[str] = []
        current = f"{name}:"
        for word in value.split(" "):
            if word and len(current) + 1 + len(word) > _MAX_LINE and current != f"{name}:":
                lines.append(current)
                current = ""
            current += " " + word
        lines.append(current)
        if all(len(line) <= _MAX_LINE for line in lines):
            return _CRLF.join(lines) + _CRLF
    return _encoded_words(name, value)


def _policy_header(name: str, value: str) -> str:
    """The header as the stdlib SMTP policy parses and folds it (the slow, general path)."""
    return str(SMTP.header_factory(name, value).fold(policy=SMTP))


def _address_header(name: str, address: str) -> str:
    line = f"{name}: {address}"
    if len(line) <= _MAX_LINE and _PLAIN_ADDRESS.fullmatch(address):
        return line + _CRLF
    return _policy_header(name, address)


def _list_header(name: str, items: list[str]) -> str:
    """A comma-separated header (List-Unsubscribe), folded between items, never inside one:
    its URLs must reach the mail client verbatim (RFC 2369)."""
    line = f"{name}: " + ", ".join(items)
    if len(line) <= _MAX_LINE:
        return line + _CRLF
    return f"{name}: " + ",\r\n ".join(items) + _CRLF


def _base64_lines(data: bytes) -> bytes:
    """Base64 in CRLF-terminated lines of 76 characters (RFC 2045)."""
    encoded = binascii.b2a_base64(data, newline=False)
    if not encoded:
        return b""
    lines = [encoded[start : start + 76] for start in range(0, len(encoded), 76)]
    return b"\r\n".join(lines) + b"\r\n"


def _text_entity(subtype: str, text: str) -> bytes:
    """Headers and body of one UTF-8 text part: 7bit when ASCII with short lines, else
    quoted-printable or base64, whichever is shorter (the SMTP policy's choice)."""
    data = text.encode("utf-8")
    lines = data.splitlines()
    body = b"\r\n".join(lines) + b"\r\n"
    if data.isascii() and max(map(len, lines), default=0) <= _MAX_LINE:
        encoding = "7bit"
    else:
        qp = binascii.b2a_qp(body)
        b64 = _base64_lines(body)
        encoding, body = ("quoted-printable", qp) if len(qp) <= len(b64) else ("base64", b64)
    head = f'Content-Type: text/{subtype}; charset="utf-8"\r\nContent-Transfer-Encoding: {encoding}'
    return head.encode("ascii") + b"\r\n\r\n" + body


def _attachment_entity(ref: AttachmentRef, data: bytes) -> bytes:
    """Headers and base64 body of one attachment."""
    maintype, _, subtype = ref.content_type.partition("/")
    if not maintype or not subtype or _CONTROL.search(ref.content_type):
        maintype, subtype = "application", "octet-stream"
    if _MIME_TOKEN.fullmatch(maintype) and _MIME_TOKEN.fullmatch(subtype):
        content_type = f"Content-Type: {maintype}/{subtype}{_CRLF}"
    else:
        content_type = _policy_header("Content-Type", f"{maintype}/{subtype}")
    filename = header_safe(ref.filename, 255).replace("/", "_").replace("\\", "_")
    disposition = f'Content-Disposition: attachment; filename="{filename}"'
    if len(disposition) <= _MAX_LINE and _PLAIN_FILENAME.fullmatch(filename):
        disposition += _CRLF
    else:
        part = EmailMessage(policy=SMTP)
        part["Content-Disposition"] = "attachment"
        part.set_param("filename", filename, header="Content-Disposition")
        disposition = SMTP.fold("Content-Disposition", part["Content-Disposition"])
    head = f"{content_type}Content-Transfer-Encoding: base64{_CRLF}{disposition}{_CRLF}"
    return head.encode("ascii") + _base64_lines(data)


def _multipart_entity(subtype: str, parts: list[bytes]) -> bytes:
    """A multipart entity around ``parts``, with a boundary that occurs in none of them."""
    while True:
        boundary = _BOUNDARY.format(random.getrandbits(63))
        delimiter = f"\r\n--{boundary}\r\n".encode("ascii")
        if not any(delimiter[2:-2] in part for part in parts):
            break
    head = f'Content-Type: multipart/{subtype};\r\n boundary="{boundary}"\r\n\r\n'
    return b"".join(
        (
            head.encode("ascii"),
            delimiter[2:],
            delimiter.join(parts),
            delimiter[:-2],
            b"--\r\n",
        )
    )


def _mixed_size(parts: list[bytes]) -> int:
    """What ``_multipart_entity("mixed", parts)`` weighs, without building it."""
    boundary = len(_BOUNDARY.format(0))
    head = len('Content-Type: multipart/mixed;\r\n boundary=""\r\n\r\n') + boundary
    return head + sum(len(part) for part in parts) + (len(parts) + 1) * (boundary + 6)


_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


def _with_manage_link(text: str, html: str | None, url: str, locale: str) -> tuple[str, str | None]:
    """The text and HTML bodies with a "manage preferences" link at their end (before
    ``</body>`` in HTML)."""
    from html import escape

    from notifications.preference_links import link_text

    label = link_text(locale, "manage")
    text = f"{text.rstrip()}\n\n--\n{label}: {url}\n"
    if html is None:
        return text, None
    footer = (
        '<p style="font-size:12px;color:#666666;margin-top:24px">'
        f'<a href="{escape(url, quote=True)}">{escape(label)}</a></p>'
    )
    ends = list(_BODY_END.finditer(html))
    if ends:
        cut = ends[-1].start()
        return text, html[:cut] + footer + html[cut:]
    return text, html + footer


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
    # On first use: email-validator (and its idna tables) only where emails are checked.
    from email_validator import EmailNotValidError, validate_email

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
    placeholders (URL-quoted when filled in).

    ``links`` (the preference center's signed links): every email to a known user ends with a
    "manage preferences" link, and, unless its category is critical or ``unsubscribe_url`` is
    set (a team's own endpoint takes precedence), carries a signed one-click
    ``List-Unsubscribe`` with ``List-Unsubscribe-Post`` (RFC 8058)."""

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
        links: PreferenceLinks | None = None,
    ) -> None:
        if _CONTROL.search(sender) or "@" not in parseaddr(sender)[1]:
            raise ValueError("sender must be one address without control characters")
        self.sender = sender
        self.configuration_set = configuration_set
        self.attachments = attachments
        self.unsubscribe_url = unsubscribe_url
        self.unsubscribe_mailto = unsubscribe_mailto
        self.links = links
        self.max_message_bytes = max_message_bytes
        self._ses: LazyClient[SESV2Client] = LazyClient("sesv2", client_factory)
        self._from_header: str | None = None

    def build_message(self, request: NotificationRequested, message: RenderedMessage) -> bytes:
        """The raw RFC 5322 message, CRLF line endings: multipart/mixed (when there are
        attachments) around a multipart/alternative of text and HTML (or the text part alone).
        Raises ``PermanentError`` when it cannot be sent."""
        recipient = validate_recipient(request.recipient)
        subject = header_safe(message.subject or "")
        if not subject:
            raise PermanentError("message_incomplete", "an email needs a subject")
        if not message.text and not message.html:
            raise PermanentError("message_incomplete", "an email needs a text or an HTML body")

        headers = [
            unstructured_header("Subject", subject),
            self._from(),
            _address_header("To", formataddr(("", recipient))),
            unstructured_header("X-Notification-Id", header_safe(request.notification_id)),
        ]
        unsubscribe = self._list_unsubscribe(request)
        if unsubscribe:
            headers.append(_list_header("List-Unsubscribe", unsubscribe))
            if self.unsubscribe_url or self._signed_one_click(request):
                headers.append("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n")
        headers.append("MIME-Version: 1.0\r\n")
        head = "".join(headers).encode("ascii")

        text, html_body = message.text or "", message.html
        if self.links is not None and request.user_id:
            text, html_body = _with_manage_link(
                text,
                html_body,
                self.links.manage_url(request.user_id, request.category),
                request.locale,
            )
        content = _text_entity("plain", text)
        if html_body:
            html = _text_entity("html", html_body)
            content = _multipart_entity("alternative", [content, html])
        if not request.attachments:
            return self._bounded(head + content)

        if self.attachments is None:
            raise PermanentError("attachments_unsupported", "no attachment store configured")
        parts = [content]
        for ref in request.attachments:
            budget = self.max_message_bytes - len(head) - _mixed_size(parts)
            # Base64 grows content by 4/3: bound the raw bytes by what fits once encoded.
            data = self.attachments.fetch(ref, max(0, budget * 3 // 4))
            parts.append(_attachment_entity(ref, data))
        return self._bounded(head + _multipart_entity("mixed", parts))

    def _from(self) -> str:
        """The configured sender as the SMTP policy folds it (display names RFC 2047-encoded);
        parsed once per provider, not per email."""
        if self._from_header is None:
            self._from_header = _policy_header("From", self.sender)
        return self._from_header

    def _bounded(self, raw: bytes) -> bytes:
        if len(raw) > self.max_message_bytes:
            raise PermanentError(
                "message_too_large",
                f"{len(raw)} bytes exceeds the bound of {self.max_message_bytes} bytes",
            )
        return raw

    def _signed_one_click(self, request: NotificationRequested) -> bool:
        """Whether the preference center's signed one-click URL goes in List-Unsubscribe: a
        team's own ``unsubscribe_url`` takes precedence, critical categories get none."""
        return (
            not self.unsubscribe_url
            and self.links is not None
            and bool(request.user_id)
            and not request.critical
        )

    def _list_unsubscribe(self, request: NotificationRequested) -> list[str]:
        targets = []
        if self.unsubscribe_url:
            url = self.unsubscribe_url.format(
                user_id=quote(request.user_id or "", safe=""),
                notification_id=quote(request.notification_id, safe=""),
                category=quote(request.category, safe=""),
            )
            targets.append(f"<{header_safe(url)}>")
        elif self.links is not None and self._signed_one_click(request):
            url = self.links.unsubscribe_url(request.user_id or "", request.category)
            targets.append(f"<{header_safe(url)}>")
        if self.unsubscribe_mailto:
            targets.append(f"<mailto:{header_safe(self.unsubscribe_mailto)}>")
        return targets

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
