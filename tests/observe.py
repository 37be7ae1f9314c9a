"""What the providers in moto hold: the emails SES accepted, the SMS and push SNS published."""

from __future__ import annotations

import email
import email.policy
import json
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from moto.backends import get_backend
from moto.core import DEFAULT_ACCOUNT_ID

REGION = "us-east-1"


@dataclass(frozen=True)
class SentEmail:
    destinations: tuple[str, ...]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    def body(self, subtype: str = "plain") -> str:
        part = self.message.get_body(preferencelist=(subtype,))
        return "" if part is None else str(part.get_content())  # type: ignore[union-attr]


def sent_emails() -> list[SentEmail]:
    backend = get_backend("ses")[DEFAULT_ACCOUNT_ID][REGION]
    emails = []
    for sent in backend.sent_messages:
        raw = getattr(sent, "raw_data", None)
        if raw is not None:
            parsed = email.message_from_string(raw, policy=email.policy.default)
            destinations = tuple(getattr(sent, "destinations", None) or [parsed["To"]])
        else:  # a simple (non-raw) message
            parsed = EmailMessage()
            parsed["Subject"] = sent.subject
            parsed.set_content(sent.body)
            destinations = tuple(sent.destinations.get("ToAddresses", []))
        emails.append(SentEmail(tuple(dict.fromkeys(str(d) for d in destinations)), parsed))  # type: ignore[arg-type]
    return emails


def sms_messages() -> list[tuple[str, str]]:
    backend = get_backend("sns")[DEFAULT_ACCOUNT_ID][REGION]
    return list(backend.sms_messages.values())


def push_messages() -> list[tuple[str, Any]]:
    backend = get_backend("sns")[DEFAULT_ACCOUNT_ID][REGION]
    return [
        (arn, json.loads(message) if message.startswith("{") else message)
        for arn, endpoint in backend.platform_endpoints.items()
        for message in endpoint.messages.values()
    ]
