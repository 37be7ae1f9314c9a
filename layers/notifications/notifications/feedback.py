"""Delivery feedback: what happened after the provider accepted a message.

SES publishes Delivery, Bounce and Complaint events through the configuration set to
EventBridge (default bus); each carries the ``notification_id`` tag the email provider sets.
SNS writes SMS delivery status to CloudWatch Logs, when delivery status logging is on; a
subscription filter hands those to the same function, matched to the ledger by the SNS
message id the sender recorded.

The ledger keeps ``status`` SENT (the send succeeded) and records the feedback in
``delivery_status``: DELIVERED, BOUNCED, COMPLAINED, or UNDELIVERED (SMS the carrier refused).
A hard bounce or a complaint suppresses the address in the user's preferences, so the next
notification to it is SUPPRESSED at fan-out.

A permanent failure (an SES ``Permanent`` bounce; an SMS the carrier refused for a reason in
``PERMANENT_SMS_RESPONSES``) also falls back to the next channel of the notification's chain
with reason ``permanent_bounce`` (notifications.fallback), built from the request routing had
the sender keep on the record (``keep_for_fallback``). The first such report decides; a
repeated one (SES may deliver an event twice) finds the decision taken and does nothing more.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec

from notifications.adapters.ledger import DynamoLedger
from notifications.adapters.preferences import DynamoPreferencesStore
from notifications.contracts import parse_request
from notifications.fallback import PERMANENT_BOUNCE, FallbackTrigger, build_fallback_trigger
from notifications.observability import logger

SES_OUTCOMES = {"Delivery": "DELIVERED", "Bounce": "BOUNCED", "Complaint": "COMPLAINED"}
# SNS SMS delivery status ``providerResponse`` texts that say the number cannot receive SMS
# (matched case-insensitively at the start). Others (an unreachable phone, a carrier that
# blocked this message, an unknown error) are recorded UNDELIVERED without a fallback.
PERMANENT_SMS_RESPONSES = (
    "invalid phone number",
    "phone number is opted out",
    "phone has blocked sms",
    "phone is on a blocked list",
)


class Feedback(msgspec.Struct, frozen=True):
    notification_id: str | None
    delivery_status: str
    detail: str
    suppress_address: str | None = None
    # The channel cannot reach this recipient: a fallback may follow.
    permanent: bool = False


def from_ses_event(event: Mapping[str, Any]) -> Feedback | None:
    """An EventBridge event from SES (``source`` aws.ses) as feedback; None for other types."""
    detail = event.get("detail", {})
    outcome = SES_OUTCOMES.get(str(detail.get("eventType")))
    if outcome is None:
        return None
    mail = detail.get("mail", {})
    notification_id = (mail.get("tags", {}).get("notification_id") or [None])[0]
    suppress = None
    hard = False
    if outcome == "BOUNCED":
        bounce = detail.get("bounce", {})
        hard = bounce.get("bounceType") == "Permanent"
        recipients = [r.get("emailAddress") for r in bounce.get("bouncedRecipients", [])]
        text = f"{bounce.get('bounceType')}/{bounce.get('bounceSubType')}"
        suppress = recipients[0] if hard and recipients else None
    elif outcome == "COMPLAINED":
        complaint = detail.get("complaint", {})
        recipients = [r.get("emailAddress") for r in complaint.get("complainedRecipients", [])]
        text = str(complaint.get("complaintFeedbackType", "complaint"))
        suppress = recipients[0] if recipients else None
    else:
        text = str(detail.get("delivery", {}).get("smtpResponse", "delivered"))[:200]
    return Feedback(notification_id, outcome, text, suppress, permanent=hard)


def sms_log_records(event: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The SMS delivery status records in a CloudWatch Logs subscription event."""
    payload = json.loads(gzip.decompress(base64.b64decode(event["awslogs"]["data"])))
    records = []
    for log_event in payload.get("logEvents", []):
        try:
            records.append(json.loads(log_event["message"]))
        except (KeyError, json.JSONDecodeError):
            logger.warning("unreadable SMS delivery log line", extra={"id": log_event.get("id")})
    return records


def from_sms_record(record: Mapping[str, Any]) -> tuple[str | None, Feedback]:
    """(SNS message id, feedback) for one SMS delivery status record."""
    status = "DELIVERED" if record.get("status") == "SUCCESS" else "UNDELIVERED"
    delivery = record.get("delivery", {})
    detail = str(delivery.get("providerResponse", record.get("status", "")))[:200]
    message_id = record.get("notification", {}).get("messageId")
    permanent = status == "UNDELIVERED" and detail.lower().startswith(PERMANENT_SMS_RESPONSES)
    return message_id, Feedback(None, status, detail, permanent=permanent)


class DeliveryFeedback:
    def __init__(
        self,
        ledger: DynamoLedger,
        preferences: DynamoPreferencesStore,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        fallback: FallbackTrigger | None = None,
    ) -> None:
        self.ledger = ledger
        self.preferences = preferences
        self.clock = clock
        self.fallback = fallback

    def handle(self, event: Mapping[str, Any]) -> dict[str, int]:
        if "awslogs" in event:
            return self._sms(event)
        feedback = from_ses_event(event)
        if feedback is None:
            return {"ignored": 1}
        return {"recorded": int(self.apply(feedback))}

    def _sms(self, event: Mapping[str, Any]) -> dict[str, int]:
        recorded = unmatched = 0
        for record in sms_log_records(event):
            message_id, feedback = from_sms_record(record)
            notification_id = self.ledger.find_by_provider_message_id(message_id or "")
            if notification_id is None:
                unmatched += 1
                continue
            recorded += self.apply(
                msgspec.structs.replace(feedback, notification_id=notification_id)
            )
        return {"recorded": recorded, "unmatched": unmatched}

    def apply(self, feedback: Feedback) -> bool:
        if not feedback.notification_id:
            logger.warning(
                "feedback without a notification id", extra={"status": feedback.delivery_status}
            )
            return False
        record = self.ledger.record_delivery_status(
            feedback.notification_id,
            feedback.delivery_status,
            feedback.detail,
            self.clock(),
            permanent=feedback.permanent,
        )
        if record is None:
            logger.warning(
                "feedback for an unknown notification",
                extra={"notification_id": feedback.notification_id},
            )
            return False
        user_id = record.get("user_id")
        if feedback.suppress_address and user_id and user_id != "-":
            current = self.preferences.get(str(user_id))
            if current is not None:
                self.preferences.update(
                    str(user_id),
                    {"suppressed_emails": current.suppressed_emails | {feedback.suppress_address}},
                )
        logger.info(
            "delivery feedback recorded",
            extra={
                "notification_id": feedback.notification_id,
                "delivery_status": feedback.delivery_status,
                "suppressed": bool(feedback.suppress_address),
                "permanent": feedback.permanent,
            },
        )
        if feedback.permanent and self.fallback is not None:
            self.fall_back(record)
        return True

    def fall_back(self, record: Mapping[str, Any]) -> None:
        """The next channel after a permanent bounce, once: a repeated report finds the
        decision on the record; a notification routing kept no request for has no channel
        to fall back to (or fell back already: the decision removes the request)."""
        assert self.fallback is not None
        if "fallback_decided_at" in record or "feedback_request" not in record:
            return
        failed = parse_request(str(record["feedback_request"]))
        decision = self.fallback.after_failure(failed, PERMANENT_BOUNCE, "permanent", self.clock())
        logger.info(
            "channel fallback",
            extra={
                "notification_id": failed.notification_id,
                "reason": PERMANENT_BOUNCE,
                "fallback_notification_id": (
                    decision.request.notification_id if decision and decision.request else None
                ),
                "fallback_none": decision.why_none if decision else None,
            },
        )


def build_feedback() -> DeliveryFeedback:
    from notifications.settings import FeedbackSettings

    settings = FeedbackSettings.from_env()
    ledger = DynamoLedger(settings.ledger_table)
    preferences = DynamoPreferencesStore(settings.preferences_table)
    fallback = build_fallback_trigger(settings.fallback_queue_urls(), preferences, ledger)
    return DeliveryFeedback(ledger, preferences, fallback=fallback)
