"""Alarm: each dead letter into the ledger, one admin alert per batch."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from notifications.dead_letters import build_recorder
from notifications.observability import logger, metrics, tracer

recorder = build_recorder()


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return recorder.process_batch(event, context)
