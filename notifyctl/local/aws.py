"""boto3 clients for the local runtime, created lazily (the only module here importing boto3)."""

from __future__ import annotations

import os
import threading
from functools import cached_property
from typing import TYPE_CHECKING, Any

import boto3

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sts import STSClient

DEFAULT_REGION = "us-east-1"

# One boto3 session for every AwsClients in the process: a session keeps the service models it
# has loaded, so the second stack's clients cost milliseconds instead of a second of JSON
# parsing (tests deploy hundreds of stacks). Creating clients from one session is not
# thread-safe, hence the lock; the clients themselves are.
_SESSION: boto3.session.Session | None = None
_SESSION_LOCK = threading.Lock()


def _session() -> boto3.session.Session:
    global _SESSION
    if _SESSION is None:
        _SESSION = boto3.session.Session()
    return _SESSION


class AwsClients:
    """One client per service, made on first use, all aimed at the same (moto) endpoint.

    `endpoint_url=None` leaves botocore to its defaults, which honour `AWS_ENDPOINT_URL`.
    """

    def __init__(self, region: str | None = None, endpoint_url: str | None = None) -> None:
        self.region = region or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
        self.endpoint_url = endpoint_url
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        """The client for any service, made once (creating one costs tens of milliseconds)."""
        if service not in self._clients:
            with _SESSION_LOCK:
                self._clients[service] = _session().client(
                    service,  # type: ignore[call-overload]
                    region_name=self.region,
                    endpoint_url=self.endpoint_url,
                )
        return self._clients[service]

    @cached_property
    def cloudformation(self) -> CloudFormationClient:
        return self.client("cloudformation")  # type: ignore[no-any-return]

    @cached_property
    def cloudwatch(self) -> CloudWatchClient:
        return self.client("cloudwatch")  # type: ignore[no-any-return]

    @cached_property
    def events(self) -> EventBridgeClient:
        return self.client("events")  # type: ignore[no-any-return]

    @cached_property
    def lambda_(self) -> LambdaClient:
        return self.client("lambda")  # type: ignore[no-any-return]

    @cached_property
    def s3(self) -> S3Client:
        return self.client("s3")  # type: ignore[no-any-return]

    @cached_property
    def sns(self) -> SNSClient:
        return self.client("sns")  # type: ignore[no-any-return]

    @cached_property
    def sqs(self) -> SQSClient:
        return self.client("sqs")  # type: ignore[no-any-return]

    @cached_property
    def sts(self) -> STSClient:
        return self.client("sts")  # type: ignore[no-any-return]

    @cached_property
    def account_id(self) -> str:
        return self.sts.get_caller_identity()["Account"]
