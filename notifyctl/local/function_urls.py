"""Lambda function URLs on 127.0.0.1: each HTTP request becomes a function URL event (payload
format 2.0, as AWS sends it) for the function's real handler, and its answer the HTTP response.

moto creates no ``AWS::Lambda::Url``, so the local stack has no URL for a function; this
server is it, and the functions that link to it (the sender's ``PREFERENCE_CENTER_URL``) are
pointed here before their first invocation.
"""

from __future__ import annotations

import base64
import threading
import uuid
from collections.abc import Mapping
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from notifyctl.local.functions import LocalFunction

if TYPE_CHECKING:
    from notifyctl.local.stack import LocalStack

MAX_BODY_BYTES = 1024 * 1024  # function URLs accept up to 6 MB; nothing here needs more
_TEXT_TYPES = ("text/", "application/x-www-form-urlencoded", "application/json")


def function_url_event(
    method: str,
    target: str,
    headers: Mapping[str, str],
    body: bytes,
    source_ip: str,
    domain: str,
    account_id: str = "123456789012",
) -> dict[str, Any]:
    """The event AWS hands a function for one request to its function URL (payload 2.0)."""
    parts = urlsplit(target)
    lowered = {k.lower(): v for k, v in headers.items()}
    query: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        # Repeated parameters arrive comma-joined, as API Gateway and function URLs do.
        query[key] = f"{query[key]},{value}" if key in query else value
    content_type = lowered.get("content-type", "")
    is_text = any(content_type.startswith(t) for t in _TEXT_TYPES)
    now = datetime.now(UTC)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": parts.path or "/",
        "rawQueryString": parts.query,
        "headers": lowered,
        "requestContext": {
            "accountId": account_id,
            "apiId": domain.split(".", 1)[0],
            "domainName": domain,
            "domainPrefix": domain.split(".", 1)[0],
            "http": {
                "method": method,
                "path": parts.path or "/",
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": lowered.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": bool(body) and not is_text,
    }
    if query:
        event["queryStringParameters"] = query
    if body:
        event["body"] = body.decode("utf-8") if is_text else base64.b64encode(body).decode()
    return event


class FunctionUrlServer:
    """Serves one local function as its function URL on 127.0.0.1 until ``stop()``.

    ``lock`` is held around each invocation: the local runtime swaps the process
    environment per invocation, so invocations from here must not overlap the runtime's own
    rounds (the caller holds the same lock around ``LocalStack.pump``)."""

    def __init__(
        self,
        function: LocalFunction,
        lock: AbstractContextManager[Any],
        port: int = 0,
        account_id: str = "123456789012",
    ) -> None:
        self.function = function
        self.lock = lock
        self.account_id = account_id
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/"

    def start(self) -> FunctionUrlServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def invoke(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes, source_ip: str
    ) -> tuple[int, dict[str, str], bytes]:
        host = urlsplit(self.url).netloc
        event = function_url_event(method, target, headers, body, source_ip, host, self.account_id)
        with self.lock:
            invocation = self.function.invoke(event)
        if not invocation.ok or not isinstance(invocation.result, dict):
            # What a function URL answers when the function fails.
            return 502, {"Content-Type": "application/json"}, b'{"Message":"Internal Server Error"}'
        result = invocation.result
        raw = result.get("body") or ""
        payload = base64.b64decode(raw) if result.get("isBase64Encoded") else str(raw).encode()
        response_headers = {str(k): str(v) for k, v in (result.get("headers") or {}).items()}
        return int(result.get("statusCode", 200)), response_headers, payload

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = min(int(self.headers.get("Content-Length") or 0), MAX_BODY_BYTES)
                body = self.rfile.read(length) if length else b""
                status, headers, payload = server.invoke(
                    self.command,
                    self.path,
                    dict(self.headers.items()),
                    body,
                    self.client_address[0],
                )
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                return  # request lines carry tokens: never printed

        return Handler


LOCAL_URL_TAG = "notifyctl:local-function-url"


def serve_function_urls(
    stack: LocalStack, lock: AbstractContextManager[Any], port: int = 0
) -> dict[str, FunctionUrlServer]:
    """Serve every function URL of the stack on 127.0.0.1 (the first on ``port``, 0: any free
    one, the next ones on any free port). Each function whose environment names a served
    URL as moto made it (``https://<id>.lambda-url...``) is pointed at the local one instead,
    and the function is tagged ``notifyctl:local-function-url`` with it, so that the CLI can
    find it. Returns logical id of the URL resource -> running server."""
    by_arn = {f.spec.arn: f for f in stack.functions.values()}
    servers: dict[str, FunctionUrlServer] = {}
    for logical_id, resource in stack.resources.items():
        if resource.resource_type != "AWS::Lambda::Url" or resource.physical_id not in by_arn:
            continue
        function = by_arn[resource.physical_id]
        config = stack.clients.lambda_.get_function_url_config(FunctionName=function.spec.name)
        server = FunctionUrlServer(function, lock, port, stack.account_id).start()
        port = 0
        servers[logical_id] = server
        for other in stack.functions.values():
            for name, value in other.environment.items():
                if value.rstrip("/") == config["FunctionUrl"].rstrip("/"):
                    other.environment[name] = server.url
        stack.clients.lambda_.tag_resource(
            Resource=function.spec.arn, Tags={LOCAL_URL_TAG: server.url}
        )
    return servers
