"""Delivery feedback: SES delivery, bounce and complaint events, and SNS SMS delivery logs."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from notifications.feedback import build_feedback
from notifications.observability import logger, metrics, tracer

feedback = build_feedback()


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    return feedback.handle(event)
