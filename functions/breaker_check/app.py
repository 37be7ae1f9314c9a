"""Breaker check: every minute, make each channel's event source mapping follow its breaker."""

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from notifications.circuit_breaker import build_breaker_check
from notifications.observability import logger

check = build_breaker_check()


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = check.run(datetime.now(UTC))
    logger.info(
        "breaker check done", extra={"enabled": result.enabled, "disabled": result.disabled}
    )
    return {"enabled": list(result.enabled), "disabled": list(result.disabled)}
