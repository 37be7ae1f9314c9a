"""SES's mailbox simulator on the local stack: the feedback SES publishes for an email sent to
one of its simulator addresses (``bounce@simulator.amazonses.com`` and the others below).

moto's SES records each email it accepts but publishes no events, and keeps neither the
configuration set nor the tags of a send. After each round the runtime looks at the emails
moto accepted since the last round; for each recipient that is a simulator address it puts on
the default bus the event SES publishes through a configuration set's EventBridge destination:
source ``aws.ses``, the stack's configuration set ARN in ``resources``, the ``notification_id``
tag (read back from the ``X-Notification-Id`` header the email provider sets to the same value).
The template's rule routes it to DeliveryFeedbackFunction. Other recipients get no feedback
(in AWS they would get a Delivery event). docs/local-runtime.md lists this among the gaps.
"""

from __future__ import annotations

import email
import email.policy
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from moto.backends import get_backend

from notifyctl.local.aws import AwsClients

SIMULATOR_DOMAIN = "simulator.amazonses.com"
_PUT_EVENTS_LIMIT = 10


@dataclass(frozen=True)
class Outcome:
    detail_type: str
    event_type: str
    # The outcome's own object in the event detail, for one recipient.
    part: Callable[[str, str], tuple[str, dict[str, Any]]]


def _bounce(sub_type: str) -> Callable[[str, str], tuple[str, dict[str, Any]]]:
    def part(address: str, at: str) -> tuple[str, dict[str, Any]]:
        return "bounce", {
            "bounceType": "Permanent",
            "bounceSubType": sub_type,
            "bouncedRecipients": [
                {
                    "emailAddress": address,
                    "action": "failed",
                    "status": "5.1.1",
                    "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                }
            ],
            "timestamp": at,
        }

    return part


def _complaint(address: str, at: str) -> tuple[str, dict[str, Any]]:
    return "complaint", {
        "complainedRecipients": [{"emailAddress": address}],
        "complaintFeedbackType": "abuse",
        "timestamp": at,
    }


def _delivery(address: str, at: str) -> tuple[str, dict[str, Any]]:
    return "delivery", {
        "recipients": [address],
        "smtpResponse": "250 2.6.0 Message received",
        "processingTimeMillis": 500,
        "timestamp": at,
    }


# SES's simulator addresses (a ``+label`` after the local part is allowed, as in SES).
OUTCOMES: dict[str, Outcome] = {
    "success": Outcome("Email Delivered", "Delivery", _delivery),
    "bounce": Outcome("Email Bounced", "Bounce", _bounce("General")),
    "suppressionlist": Outcome("Email Bounced", "Bounce", _bounce("OnAccountSuppressionList")),
    "complaint": Outcome("Email Complaint Received", "Complaint", _complaint),
}


def simulated_outcome(address: str) -> Outcome | None:
    local, _, domain = address.strip().lower().rpartition("@")
    if domain != SIMULATOR_DOMAIN:
        return None
    return OUTCOMES.get(local.split("+", 1)[0])


class SesMailboxSimulator:
    """Publishes the SES events for simulator addresses among the emails moto accepted."""

    def __init__(
        self,
        clients: AwsClients,
        account_id: str,
        configuration_set: str,
        now: Callable[[], float],
    ) -> None:
        self.clients = clients
        self.account_id = account_id
        self.configuration_set_arn = (
            f"arn:aws:ses:{clients.region}:{account_id}:configuration-set/{configuration_set}"
        )
        self.now = now
        self.seen = 0
        self.published: list[dict[str, Any]] = []  # every PutEvents entry, in order

    def feed_back(self) -> int:
        """Publish the events of the emails accepted since the last call; returns how many."""
        messages = list(get_backend("ses")[self.account_id][self.clients.region].sent_messages)
        new, self.seen = messages[self.seen :], len(messages)
        entries = [entry for message in new for entry in self._entries(message)]
        for start in range(0, len(entries), _PUT_EVENTS_LIMIT):
            chunk = entries[start : start + _PUT_EVENTS_LIMIT]
            response = self.clients.events.put_events(Entries=chunk)  # type: ignore[arg-type]
            if response.get("FailedEntryCount"):
                raise RuntimeError(f"SES mailbox simulator: put_events failed: {response}")
            self.published.extend(chunk)
        return len(entries)

    def _entries(self, message: Any) -> list[dict[str, Any]]:
        raw = getattr(message, "raw_data", None)
        if raw is None:
            return []  # the email provider always sends raw MIME
        # moto lists an address once per place it found it (Destination and the To header)
        destinations = list(dict.fromkeys(getattr(message, "destinations", None) or []))
        headers = email.message_from_string(raw, policy=email.policy.default)
        notification_id = str(headers.get("X-Notification-Id", "")).strip()
        at = datetime.fromtimestamp(self.now(), UTC).isoformat(timespec="milliseconds")
        entries = []
        for address in destinations:
            outcome = simulated_outcome(address)
            if outcome is None:
                continue
            key, part = outcome.part(address, at)
            detail = {
                "eventType": outcome.event_type,
                "mail": {
                    "timestamp": at,
                    "source": message.source,
                    "messageId": message.id,
                    "destination": list(destinations),
                    "tags": {"notification_id": [notification_id]} if notification_id else {},
                },
                key: part,
            }
            entries.append(
                {
                    "Source": "aws.ses",
                    "DetailType": outcome.detail_type,
                    "Resources": [self.configuration_set_arn],
                    "Detail": json.dumps(detail),
                    "EventBusName": "default",
                }
            )
        return entries
