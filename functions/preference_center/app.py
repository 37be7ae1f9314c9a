"""Preference center: the signed-link page and RFC 8058 one-click unsubscribe, behind a
Lambda function URL (payload format 2.0)."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from notifications.observability import logger, metrics, tracer
from notifications.preference_center import build_preference_center, handle_function_url_event

center = build_preference_center()


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle_function_url_event(center, event)
