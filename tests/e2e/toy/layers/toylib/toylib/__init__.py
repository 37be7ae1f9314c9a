"""Toy layer: records what a function saw into the stack's DynamoDB table."""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

import boto3


def record(kind: str, payload: dict[str, Any]) -> None:
    """Store one observation under partition `kind` (never in Python globals)."""
    table = boto3.resource("dynamodb").Table(os.environ["RECORD_TABLE"])
    table.put_item(Item={"pk": kind, "sk": str(uuid.uuid4()), "payload": json.dumps(payload)})
