"""Fan-out: an EventBridge domain event in, notification requests on the channel queues out."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from notifications.fanout import build_fan_out
from notifications.observability import logger, metrics, tracer

fan_out = build_fan_out()


@logger.inject_lambda_context(correlation_id_path="id")
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = fan_out.handle(event)
    return {
        "event_id": result.event_id,
        "enqueued": result.enqueued,
        "suppressed": result.suppressed,
        "rejected_reason": result.rejected_reason,
    }
