"""Figure 1: AWS requests and USD per delivered notification, product vs naive baseline.

Runs the whole local stack (template.yaml on moto, controlled clock) for ``--notifications``
notifications (default 1,000) of the demo's event mix, on the happy path and with the
provider failing ``--failure-rate`` (0.3) of sends, for the product and for the baseline
(``baseline.py``) on identical events. Every botocore request is counted by API and by who
made it (``common.RequestLog``); only the application's requests and the event source
mapping's are billable.

    python bench/requests_cost.py [--notifications 1000] [--json]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from typing import Any

import common

# us-east-1 list prices as published on aws.amazon.com/<service>/pricing, taken 2025-06-01
# (assumptions: no free tier, no volume tiers, standard queues, on-demand DynamoDB).
PRICES = {
    "sqs_request": 0.40 / 1e6,  # per request (64 KB chunk), standard queue
    "dynamodb_write": 0.625 / 1e6,  # per WRU (on-demand); 1 WRU per write of an item <= 1 KB
    "dynamodb_read": 0.125 / 1e6,  # per RRU (on-demand); 1 RRU per strongly consistent read
    "lambda_request": 0.20 / 1e6,  # per invocation
    "lambda_gb_second": 0.0000133334,  # arm64
    "eventbridge_event": 1.00 / 1e6,  # per custom event published
    "ses_email": 0.10 / 1000,  # per email sent (outbound, no attachments)
    "sns_push": 0.50 / 1e6,  # per mobile push publish
    "secrets_api_call": 0.05 / 10_000,  # per Secrets Manager API call
}
PRICES_DATE = "2025-06-01"


@dataclass
class SystemRun:
    system: str
    failure_rate: float
    events: int
    requested: int
    delivered: int
    app_requests: int
    esm_requests: int
    buffer_requests: int  # the FanOutQueue buffer (common.billable_requests)
    esm_idle_requests: int
    runtime_requests: int
    producer_requests: int
    app_by_api: dict[str, int]
    app_write_units: int
    app_read_units: int
    invocations: dict[str, int]
    handler_seconds: dict[str, float]

    @property
    def per_delivered(self) -> float:
        return (self.app_requests + self.esm_requests + self.buffer_requests) / max(
            self.delivered, 1
        )

    def cost_per_million(self) -> dict[str, float]:
        """USD per million delivered notifications, by item."""
        scale = 1e6 / max(self.delivered, 1)
        usd: dict[str, float] = {}
        sqs = (
            self.esm_requests
            + self.buffer_requests
            + sum(n for k, n in self.app_by_api.items() if k.startswith("sqs:"))
        )
        usd["SQS requests"] = sqs * PRICES["sqs_request"] * scale
        usd["DynamoDB writes"] = self.app_write_units * PRICES["dynamodb_write"] * scale
        usd["DynamoDB reads"] = self.app_read_units * PRICES["dynamodb_read"] * scale
        usd["Lambda requests"] = sum(self.invocations.values()) * PRICES["lambda_request"] * scale
        gb_s = sum(self.handler_seconds.values()) * common.MEMORY_MB / 1024
        usd["Lambda GB-s"] = gb_s * PRICES["lambda_gb_second"] * scale
        usd["EventBridge events"] = self.events * PRICES["eventbridge_event"] * scale
        usd["Secrets Manager"] = (
            self.app_by_api.get("secretsmanager:GetSecretValue", 0)
            * PRICES["secrets_api_call"]
            * scale
        )
        usd["platform total"] = sum(usd.values())
        usd["SES emails"] = self.app_by_api.get("sesv2:SendEmail", 0) * PRICES["ses_email"] * scale
        sns = self.app_by_api.get("sns:Publish", 0)
        usd["SNS push+SMS publishes (push price)"] = sns * PRICES["sns_push"] * scale
        return usd


def run(
    system: str,
    failure_rate: float,
    notifications: int,
    parameters: dict[str, str] | None = None,
) -> SystemRun:
    from notifyctl.local.clock import ControlledClock

    with (
        ControlledClock() as clock,
        common.instrumented() as (requests, invocations),
        common.local_stack(clock, failure_rate=failure_rate, parameters=parameters) as scenario,
    ):
        result = common.measured_run(
            system, scenario, requests, invocations, notifications, steady=False
        )
        categories = requests.by_category()
        delivered = _sent_in_ledger(scenario.stack) if failure_rate else result.sent
        return SystemRun(
            system=system,
            failure_rate=failure_rate,
            events=result.events,
            requested=result.requested,
            delivered=delivered,
            app_requests=categories.get("app", 0),
            esm_requests=categories.get("esm", 0),
            buffer_requests=common.buffer_requests(categories, system, result.events),
            esm_idle_requests=categories.get("esm_idle", 0),
            runtime_requests=categories.get("runtime", 0),
            producer_requests=categories.get("producer", 0),
            app_by_api=requests.by_operation("app:"),
            app_write_units=requests.capacity[("wru", "app")],
            app_read_units=requests.capacity[("rru", "app")],
            invocations={k: len(v) for k, v in invocations.seconds.items()},
            handler_seconds={k: invocations.total(k) for k in invocations.seconds},
        )


def _sent_in_ledger(stack: Any) -> int:
    from notifications.adapters.ledger import DynamoLedger

    ledger = DynamoLedger(stack.physical_id("LedgerTable"))
    return sum(1 for _ in ledger.by_status("SENT"))


def report(runs: list[SystemRun]) -> str:
    rows = []
    by_key = {(r.system, r.failure_rate): r for r in runs}
    for r in runs:
        base = by_key.get(("baseline", r.failure_rate))
        rows.append(
            [
                r.system,
                f"{r.failure_rate:.1f}",
                str(r.requested),
                str(r.delivered),
                f"{r.app_requests / max(r.delivered, 1):.2f}",
                f"{r.esm_requests / max(r.delivered, 1):.2f}",
                f"{r.buffer_requests / max(r.delivered, 1):.2f}",
                f"{r.per_delivered:.2f}",
                common.ratio(r.per_delivered, base.per_delivered) if base else "",
                f"{r.esm_idle_requests}/{r.runtime_requests}",
                f"{r.cost_per_million()['platform total']:.2f}",
            ]
        )
    lines = [
        "Figure 1: AWS requests per delivered notification (local stack, demo event mix)",
        common.table(
            rows,
            [
                "system",
                "fail",
                "requested",
                "delivered",
                "app/notif",
                "esm/notif",
                "buffer/notif",
                "billable/notif",
                "vs baseline",
                "idle/runtime reqs",
                "USD/M platform",
            ],
        ),
        "goal: billable/notif <= 3.0 on the happy path (floor ~1.3)",
        "",
    ]
    for r in runs:
        per = {k: round(v / max(r.delivered, 1), 3) for k, v in sorted(r.app_by_api.items())}
        lines.append(f"  {r.system} @ {r.failure_rate:.1f}: app requests per delivered: {per}")
    lines.append("")
    lines.append(f"USD per million delivered notifications (us-east-1 list prices, {PRICES_DATE})")
    items = list(runs[0].cost_per_million())
    cost_rows = [[item, *[f"{r.cost_per_million()[item]:.2f}" for r in runs]] for item in items]
    lines.append(
        common.table(cost_rows, ["item", *[f"{r.system}@{r.failure_rate:.1f}" for r in runs]])
    )
    gbs = [
        f"{r.system}@{r.failure_rate:.1f}: "
        + ", ".join(
            f"{fn} {1000 * s / max(r.invocations[fn], 1):.1f} ms x {r.invocations[fn]}"
            for fn, s in sorted(r.handler_seconds.items())
        )
        for r in runs
    ]
    lines.append("handler time per invocation (local, moto in-process): " + "; ".join(gbs))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notifications", type=int, default=1000)
    parser.add_argument("--failure-rate", type=float, default=0.3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--parameter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="template parameter for the product, e.g. BatchAdmission=false (repeatable)",
    )
    parser.add_argument("--product-only", action="store_true", help="skip the baseline")
    args = parser.parse_args(argv)
    parameters = dict(item.split("=", 1) for item in args.parameter)
    systems = ("product",) if args.product_only else ("product", "baseline")
    runs = [
        run(system, rate, args.notifications, parameters if system == "product" else None)
        for rate in (0.0, args.failure_rate)
        for system in systems
    ]
    print(report(runs))
    figures = {
        "runs": [
            {**asdict(r), "per_delivered": r.per_delivered, "usd_per_million": r.cost_per_million()}
            for r in runs
        ]
    }
    if args.json:
        print(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    main()
