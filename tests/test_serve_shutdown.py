"""`pagecast serve` stops in order when its process group is signalled, as a terminal's
Ctrl-C or a service manager's stop does: it stops accepting, answers what it took in,
stops the worker, and stops the embedded Redis last. Webhook POSTs that keep arriving get
200 or find nobody listening; none meets "queue unavailable" or a server error."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

PAGECAST = str(Path(sys.executable).parent / "pagecast")
APP_SECRET = "shutdown-app-secret"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _signed_event(i: int) -> tuple[bytes, dict[str, str]]:
    event = {
        "sender": {"id": f"{7_000_000 + i}"},
        "recipient": {"id": "1001"},
        "timestamp": int(time.time() * 1000),
        "message": {"mid": f"m_shutdown_{i}", "text": "hello"},
    }
    raw = json.dumps({"object": "page", "entry": [{"id": "1001", "messaging": [event]}]}).encode()
    digest = hmac.new(APP_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    return raw, {"X-Hub-Signature-256": f"sha256={digest}", "Content-Type": "application/json"}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_process_group_stops_serve_in_order(
    sig: signal.Signals, tmp_path: Path
) -> None:
    port = _free_port()
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PAGECAST_") and k not in ("DATABASE_URL", "REDIS_URL")
    }
    environ |= {
        "PAGECAST_DATA_DIR": str(tmp_path / "data"),
        "PAGECAST_APP_SECRET": APP_SECRET,
        "PAGECAST_LOG_LEVEL": "INFO",
    }
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        # A session of its own: the signal below goes to its whole process group.
        process = subprocess.Popen(
            [PAGECAST, "serve", "--port", str(port)],
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    statuses: dict[str, int] = {}
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "serve did not answer within 30 s"
                time.sleep(0.1)
        stop = threading.Event()
        posted = threading.Event()

        def post_until_stopped() -> None:
            with httpx.Client(base_url=base, timeout=10) as client:
                i = 0
                while not stop.is_set():
                    raw, headers = _signed_event(i)
                    try:
                        key = str(
                            client.post(
                                "/webhooks/messenger", content=raw, headers=headers
                            ).status_code
                        )
                    except httpx.TransportError:
                        key = "refused"
                    statuses[key] = statuses.get(key, 0) + 1
                    if statuses.get("200", 0) >= 20:
                        posted.set()
                    i += 1

        poster = threading.Thread(target=post_until_stopped)
        poster.start()
        assert posted.wait(30), f"no webhook accepted: {statuses}"
        os.killpg(process.pid, sig)
        process.wait(timeout=60)
        time.sleep(0.3)  # a few more POSTs into the closed port
        stop.set()
        poster.join(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    output = log.read_text(errors="replace")
    assert process.returncode == 0, output[-3000:]
    assert set(statuses) <= {"200", "refused"}, statuses
    assert statuses.get("refused", 0) > 0  # it did stop listening while they came
    for sign in ("queue unavailable", "Traceback", "Exception in ASGI application"):
        assert sign not in output, output[-3000:]
    # Redis goes last, after the web server and the worker are done with it.
    lines = output.splitlines()
    redis_stopped = next(i for i, line in enumerate(lines) if "embedded Redis stopped" in line)
    worker_done = next(
        i for i, line in enumerate(lines) if "shut down" in line and "worker" in line
    )
    server_done = next(i for i, line in enumerate(lines) if "Finished server process" in line)
    assert worker_done < redis_stopped and server_done < redis_stopped
    assert redis_stopped == max(i for i, line in enumerate(lines) if line.strip())
