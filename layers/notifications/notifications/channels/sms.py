"""SMS through SNS: E.164 recipients, GSM-7 / UCS-2 segment counting and a segment limit."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from notifications.adapters.aws import LazyClient
from notifications.channels.aws_errors import classify_aws_error
from notifications.channels.base import ProviderReceipt, RenderedMessage
from notifications.errors import PermanentError
from notifications.masking import mask_phone
from notifications.models import NotificationRequested

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient

    from notifications.preference_links import PreferenceLinks

Encoding = Literal["GSM-7", "UCS-2"]
SmsType = Literal["Transactional", "Promotional"]
OverLimit = Literal["reject", "truncate"]

# 3GPP TS 23.038 default alphabet (basic table) and its extension table (escape + char = 2 septets).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")
GSM7 = GSM7_BASIC | GSM7_EXTENSION

SINGLE_LIMIT: dict[Encoding, int] = {"GSM-7": 160, "UCS-2": 70}
PART_LIMIT: dict[Encoding, int] = {"GSM-7": 153, "UCS-2": 67}
ELLIPSIS: dict[Encoding, str] = {"GSM-7": "...", "UCS-2": "\u2026"}
_E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")
_SENDER_ID = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9]{1,11}$")
# Countries where SNS does not support alphanumeric sender ids (NANP): the attribute is omitted.
DEFAULT_SENDER_ID_UNSUPPORTED = frozenset({"US", "CA", "PR"})

SNS_SMS_PERMANENT_CODES = {
    "InvalidParameter": "provider_rejected",
    "InvalidParameterValue": "provider_rejected",
    "AuthorizationError": "provider_unauthorized",
    "OptedOut": "recipient_opted_out",
}


@dataclass(frozen=True)
class SegmentCount:
    """How a text travels as SMS: its encoding, the number of segments, and its length in
    encoding units (septets for GSM-7, UTF-16 code units for UCS-2)."""

    encoding: Encoding
    segments: int
    units: int


def _units(char: str, encoding: Encoding) -> int:
    if encoding == "GSM-7":
        return 2 if char in GSM7_EXTENSION else 1
    return 2 if ord(char) > 0xFFFF else 1


def encoding_for(text: str) -> Encoding:
    return "GSM-7" if all(char in GSM7 for char in text) else "UCS-2"


def count_segments(text: str) -> SegmentCount:
    """Count the segments of ``text``: 160 septets (GSM-7) or 70 code units (UCS-2) fit one
    message; longer texts are split into 153 / 67 unit parts (the rest is the concatenation
    header), never splitting an escape sequence or a surrogate pair. An empty text is one
    segment."""
    encoding = encoding_for(text)
    sizes = [_units(char, encoding) for char in text]
    units = sum(sizes)
    if units <= SINGLE_LIMIT[encoding]:
        return SegmentCount(encoding, 1, units)
    part, segments, used = PART_LIMIT[encoding], 1, 0
    for size in sizes:
        if used + size > part:
            segments += 1
            used = 0
        used += size
    return SegmentCount(encoding, segments, units)


def truncate_to_segments(text: str, max_segments: int) -> str:
    """The longest prefix of ``text`` plus an ellipsis that fits ``max_segments``. GSM-7 texts
    end with ``...`` (the single-character ellipsis is not GSM-7 and would turn the message into
    UCS-2, halving its capacity); UCS-2 texts end with ``…``."""
    if count_segments(text).segments <= max_segments:
        return text
    ellipsis = ELLIPSIS[encoding_for(text)]
    low, high = 0, len(text)
    while low < high:  # largest prefix length that fits
        middle = (low + high + 1) // 2
        if count_segments(text[:middle].rstrip() + ellipsis).segments <= max_segments:
            low = middle
        else:
            high = middle - 1
    return text[:low].rstrip().rstrip("\u200d\ufe0f") + ellipsis


def validate_phone(number: str) -> str:
    """The E.164 number, or ``PermanentError('invalid_recipient')``."""
    if not _E164.match(number):
        raise PermanentError(
            "invalid_recipient", f"not an E.164 phone number ({mask_phone(number)})"
        )
    import phonenumbers  # on first use: only SMS batches need it (15 ms of a cold start)

    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        parsed = None
    if parsed is None or not phonenumbers.is_valid_number(parsed):
        raise PermanentError(
            "invalid_recipient", f"not a valid phone number ({mask_phone(number)})"
        )
    return number


class SnsSmsProvider:
    """Publishes SMS through SNS. Over ``max_segments`` the message is rejected with
    ``PermanentError('sms_too_long')`` (``over_limit='reject'``, the default) or cut to fit with
    an ellipsis (``over_limit='truncate'``)."""

    def __init__(
        self,
        sms_type: SmsType = "Transactional",
        sender_id: str | None = None,
        max_segments: int = 3,
        over_limit: OverLimit = "reject",
        *,
        sender_id_unsupported: frozenset[str] = DEFAULT_SENDER_ID_UNSUPPORTED,
        client_factory: Callable[[], SNSClient] | None = None,
        links: PreferenceLinks | None = None,
        manage_link_categories: frozenset[str] = frozenset(),
    ) -> None:
        if sms_type not in ("Transactional", "Promotional"):
            raise ValueError("sms_type must be Transactional or Promotional")
        if sender_id is not None and not _SENDER_ID.match(sender_id):
            raise ValueError("sender_id must be 1-11 letters or digits with at least one letter")
        if not 1 <= max_segments <= 10:
            raise ValueError("max_segments must be between 1 and 10")
        if over_limit not in ("reject", "truncate"):
            raise ValueError("over_limit must be reject or truncate")
        self.sms_type = sms_type
        self.sender_id = sender_id
        self.max_segments = max_segments
        self.over_limit = over_limit
        self.sender_id_unsupported = sender_id_unsupported
        self.links = links
        self.manage_link_categories = manage_link_categories
        self._sns: LazyClient[SNSClient] = LazyClient("sns", client_factory)

    def prepare(self, text: str) -> tuple[str, SegmentCount, bool]:
        """The text to send, its segment count, and whether it was truncated."""
        if not text.strip():
            raise PermanentError("message_incomplete", "an SMS needs a text")
        count = count_segments(text)
        if count.segments <= self.max_segments:
            return text, count, False
        if self.over_limit == "reject":
            raise PermanentError(
                "sms_too_long",
                f"{count.segments} {count.encoding} segments exceed the limit of "
                f"{self.max_segments}",
            )
        cut = truncate_to_segments(text, self.max_segments)
        return cut, count_segments(cut), True

    def with_manage_link(self, request: NotificationRequested, text: str) -> str:
        """``text`` and a short signed "manage preferences" link, for the categories that
        allow one and only when both still fit ``max_segments`` (else the text alone)."""
        if (
            self.links is None
            or not request.user_id
            or request.category not in self.manage_link_categories
        ):
            return text
        from notifications.preference_links import link_text

        url = self.links.manage_url(request.user_id, request.category)
        linked = f"{text.rstrip()}\n{link_text(request.locale, 'sms')}: {url}"
        return linked if count_segments(linked).segments <= self.max_segments else text

    def attributes(self, number: str) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            "AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": self.sms_type}
        }
        import phonenumbers

        region = phonenumbers.region_code_for_number(phonenumbers.parse(number, None))
        if self.sender_id and region not in self.sender_id_unsupported:
            attributes["AWS.SNS.SMS.SenderID"] = {
                "DataType": "String",
                "StringValue": self.sender_id,
            }
        return attributes

    def send(self, request: NotificationRequested, message: RenderedMessage) -> ProviderReceipt:
        number = validate_phone(request.recipient)
        text, count, truncated = self.prepare(self.with_manage_link(request, message.text))
        try:
            response = self._sns().publish(
                PhoneNumber=number, Message=text, MessageAttributes=self.attributes(number)
            )
        except Exception as error:
            raise classify_aws_error(error, SNS_SMS_PERMANENT_CODES) from error
        return ProviderReceipt(
            provider_message_id=response["MessageId"],
            detail={
                "encoding": count.encoding,
                "segments": str(count.segments),
                "truncated": "true" if truncated else "false",
            },
        )
