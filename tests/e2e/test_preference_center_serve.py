"""`notifyctl local serve` serves the preference center's function URL on 127.0.0.1, and
`notifyctl preferences link` against it prints a link that opens the page (separate processes,
as a developer runs them)."""

import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTIFYCTL = [sys.executable, "-m", "notifyctl"]
SERVED = re.compile(r"Function URL PreferenceCenterFunction: (http://127\.0\.0\.1:\d+/)")
STARTUP_LIMIT = 480  # seconds: a bound for a loaded machine, not a figure asserted


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_local_serve_serves_the_page_that_a_printed_link_opens():
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    env.pop("AWS_ENDPOINT_URL", None)
    server = subprocess.Popen(
        [*NOTIFYCTL, "local", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # Given the local stack running, which prints where the function URL is served
        # (lines are read by a thread: select() on the pipe misses lines already read ahead
        # into the text wrapper's buffer, and serve prints its banner at once)
        lines: queue.Queue[str] = queue.Queue()
        reader = threading.Thread(target=lambda: [lines.put(line) for line in server.stdout])
        reader.daemon = True
        reader.start()
        output, url = "", None
        deadline = time.monotonic() + STARTUP_LIMIT
        while url is None or "Endpoint:" not in output:
            assert server.poll() is None, output
            assert time.monotonic() < deadline, output
            try:
                output += lines.get(timeout=1.0)
            except queue.Empty:
                continue
            match = SERVED.search(output)
            url = match.group(1) if match else None

        # When the operator asks for a user's link against it
        endpoint = f"http://127.0.0.1:{port}"
        printed = subprocess.run(
            [*NOTIFYCTL, "--endpoint-url", endpoint, "preferences", "link", "user-123"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert printed.returncode == 0, printed.stderr
        link = printed.stdout.strip()

        # Then the link points at the served URL, and opens the page over HTTP
        assert link.startswith(url + "preferences?t=")
        with urllib.request.urlopen(link, timeout=30) as page:
            assert page.status == 200
            assert page.headers["Content-Type"] == "text/html; charset=utf-8"
            assert "<h1>Notification preferences</h1>" in page.read().decode()
        # And a link without a valid token gets the error page
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url + "preferences?t=forged.token", timeout=30)
        assert refused.value.code == 400
        assert "This link does not work" in refused.value.read().decode()
    finally:
        server.terminate()
        server.wait(timeout=30)
