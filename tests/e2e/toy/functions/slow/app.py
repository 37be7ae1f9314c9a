"""Toy slow worker: records what its environment looks like, sleeps, then records again.

A body {"sleep": s} sleeps s seconds between the two records; {"import": name} records
whether `name` can be imported here.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import uuid
from typing import Any

import boto3

# Made at import (Lambda's init phase, which has its own time limit), so an invocation only
# writes: the 2 s Timeout is then about the handler's sleep alone.
TABLE = boto3.resource("dynamodb").Table(os.environ["RECORD_TABLE"])
WARM = {"invocations": 0}


def record(kind: str, payload: dict[str, Any]) -> None:
    TABLE.put_item(Item={"pk": kind, "sk": str(uuid.uuid4()), "payload": json.dumps(payload)})


def handler(event: dict[str, Any], context: Any) -> None:
    WARM["invocations"] += 1
    for item in event["Records"]:
        body = json.loads(item["body"])
        seen: dict[str, Any] = {
            "n": body.get("n"),
            "pid": os.getpid(),
            "now": time.time(),
            "warm_invocations": WARM["invocations"],
            "tz": os.environ.get("TZ"),
            "utc_offset": time.strftime("%z", time.localtime()),
            "sam_local": os.environ.get("AWS_SAM_LOCAL"),
            "remaining_ms": context.get_remaining_time_in_millis(),
            "host_modules": sorted(m for m in ("moto", "pytest", "notifyctl") if m in sys.modules),
        }
        if "import" in body:
            try:
                importlib.import_module(body["import"])
                seen["import"] = "ok"
            except ImportError as exc:
                seen["import"] = str(exc)
        record("slow_started", seen)
        time.sleep(float(body.get("sleep", 0)))
        record(
            "slow_finished",
            {"n": body.get("n"), "remaining_ms": context.get_remaining_time_in_millis()},
        )
