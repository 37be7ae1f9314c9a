"""Sender: delivers a batch from one channel queue; partial batch failures for retries."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from notifications.observability import logger, metrics, tracer
from notifications.sending import build_sender

sender = build_sender()


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return sender.process_batch(event, context)
