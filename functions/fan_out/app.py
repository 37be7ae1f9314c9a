"""Fan-out: domain events from FanOutQueue in, notification requests on the channel queues out.

The event source is FanOutQueue (BatchSize 10, ReportBatchItemFailures): the handler returns
``{"batchItemFailures": [...]}``. A bare EventBridge event (no ``Records``), as
``sam local invoke FanOutFunction -e events/fan_out/order-placed.json`` passes, is fanned out
as a batch of one and answered with that event's result.
"""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from notifications.fanout import build_fan_out
from notifications.observability import logger, metrics, tracer

fan_out = build_fan_out()


# The correlation id is the event id: taken from a bare event here, set per event of a batch
# by the fan-out itself.
@logger.inject_lambda_context(correlation_id_path="id")
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "Records" in event:
        return fan_out.process_batch(event, context)
    result = fan_out.handle(event)
    return {
        "event_id": result.event_id,
        "enqueued": result.enqueued,
        "suppressed": result.suppressed,
        "rejected_reason": result.rejected_reason,
    }
