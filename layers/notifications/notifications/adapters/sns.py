"""SNS: admin alerts (``alerts.Alerts``)."""

from __future__ import annotations

from notifications.adapters.aws import client


class SnsAlerts:
    def __init__(self, topic_arn: str) -> None:
        self.topic_arn = topic_arn

    def publish(self, subject: str, message: str) -> str:
        response = client("sns").publish(
            TopicArn=self.topic_arn, Subject=subject[:100], Message=message
        )
        return str(response["MessageId"])
