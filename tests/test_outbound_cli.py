"""`pagecast webhooks ...` as real processes (issue 22): on this machine's database, and with
`--url` against a real `pagecast serve` whose worker delivers to a receiver in this test."""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from processes import ServeProcess, clean_env
from test_cli import data_dir, migrated_dir, run  # noqa: F401 (fixtures of the CLI's tests)

GOT: list[tuple[dict[str, str], bytes]] = []


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        GOT.append((dict(self.headers), self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def _secret(output: str) -> str:
    return next(line.split()[-1] for line in output.splitlines() if line.startswith("Secret:"))


def test_endpoints_are_managed_on_this_machine(data_dir: Path) -> None:  # noqa: F811
    assert run(data_dir, "webhooks", "list").stdout.strip() == "No webhook endpoints."
    added = run(
        data_dir,
        "webhooks",
        "add",
        "--endpoint",
        "https://crm.example.com/in",
        "--events",
        "campaign.completed,campaign.started",
        "--description",
        "CRM",
    )
    assert added.returncode == 0, added.stderr
    secret = _secret(added.stdout)
    assert secret.startswith("whsec_") and "only this once" in added.stdout
    listed = run(data_dir, "webhooks", "list")
    assert listed.stdout.splitlines() == [
        "ID\tSTATE\tEVENTS\tURL",
        "1\ton\tcampaign.started,campaign.completed\thttps://crm.example.com/in",
    ]
    shown = json.loads(run(data_dir, "webhooks", "show", "1", "--json").stdout)
    assert shown["description"] == "CRM" and "secret" not in shown
    for command in (["list"], ["show", "1"], ["list", "--json"]):
        assert secret not in run(data_dir, "webhooks", *command).stdout

    off = run(data_dir, "webhooks", "update", "1", "--disable", "--events", "import.completed")
    assert off.returncode == 0, off.stderr
    assert "enabled\tFalse" in off.stdout and "events\t['import.completed']" in off.stdout
    refused = run(data_dir, "webhooks", "ping", "1")
    assert refused.returncode == 1 and "turned off" in refused.stderr
    assert run(data_dir, "webhooks", "update", "1", "--enable").returncode == 0
    pinged = run(data_dir, "webhooks", "ping", "1")
    assert pinged.returncode == 0 and "queued for webhook endpoint 1" in pinged.stdout, (
        pinged.stderr
    )
    log = json.loads(run(data_dir, "webhooks", "deliveries", "1", "--json").stdout)
    assert [i["event"]["type"] for i in log["items"]] == ["webhook.ping"]
    table = run(data_dir, "webhooks", "deliveries", "1").stdout.splitlines()
    assert table[0].startswith("ID\tEVENT\tSTATUS") and "\twebhook.ping\tpending\t" in table[1]
    again = run(data_dir, "webhooks", "redeliver", "1", str(log["items"][0]["id"]))
    assert again.returncode == 0 and "will be sent again" in again.stdout
    rotated = run(data_dir, "webhooks", "rotate-secret", "1")
    assert rotated.returncode == 0 and _secret(rotated.stdout) != secret
    assert run(data_dir, "webhooks", "delete", "1").stdout.strip() == (
        "Webhook endpoint 1 deleted."
    )
    gone = run(data_dir, "webhooks", "show", "1")
    assert gone.returncode == 1 and "does not exist" in gone.stderr


def test_bad_input_is_one_line_naming_the_field(data_dir: Path) -> None:  # noqa: F811
    for args, words in (
        (["--endpoint", "ftp://x.example", "--events", "campaign.started"], "url:"),
        (["--endpoint", "https://x.example", "--events", "campaign.boom"], "events:"),
        (["--endpoint", "https://x.example", "--events", ""], "events:"),
    ):
        result = run(data_dir, "webhooks", "add", *args)
        assert result.returncode == 1, result.stdout
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0], result.stderr
    assert run(data_dir, "webhooks", "list").stdout.strip() == "No webhook endpoints."
    status = run(data_dir, "webhooks", "deliveries", "1", "--status", "lost")
    assert status.returncode == 1 and "pending, delivered or failed" in status.stderr


@pytest.fixture(scope="module")
def served(migrated_dir: Path) -> Iterator[tuple[str, str, str]]:  # noqa: F811
    """A real `pagecast serve` that may deliver to loopback, an admin's token, and the
    receiver's URL."""
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    data = Path(shutil.copytree(migrated_dir, migrated_dir.parent / "hooks-served"))
    made = run(data, "users", "create", "--email", "a@example.com", "--role", "admin")
    assert made.returncode == 0, made.stderr
    token = run(data, "tokens", "create", "--user", "a@example.com").stdout.split()[-1]
    env = clean_env(
        {
            "PAGECAST_DATA_DIR": str(data),
            "PAGECAST_SECRET_KEY": "cli-test-key",
            "PAGECAST_WEBHOOKS_ALLOW_PRIVATE_TARGETS": "true",
            "PAGECAST_WEBHOOKS_POLL_SECONDS": "0.2",
        }
    )
    serve = ServeProcess(data.parent, env).start()
    try:
        yield serve.url, token, f"http://127.0.0.1:{receiver.server_address[1]}/in"
    finally:
        serve.stop()
        receiver.shutdown()
        receiver.server_close()


def test_with_url_a_remote_endpoint_is_added_and_its_ping_arrives_signed(
    tmp_path: Path, served: tuple[str, str, str]
) -> None:
    url, token, receiver = served

    def remote(*args: str) -> Any:
        return run(tmp_path / "laptop", "--url", url, "webhooks", *args, PAGECAST_TOKEN=token)

    added = remote("add", "--endpoint", receiver, "--events", "import.completed")
    assert added.returncode == 0, added.stderr
    secret = _secret(added.stdout)
    assert json.loads(remote("list", "--json").stdout)[0]["url"] == receiver
    assert remote("ping", "1").returncode == 0
    deadline = time.monotonic() + 20
    while not GOT:
        assert time.monotonic() < deadline, "the ping did not arrive"
        time.sleep(0.1)
    headers, body = GOT[0]
    parts = dict(p.split("=", 1) for p in headers["Pagecast-Signature"].split(","))
    mac = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256)
    assert hmac.compare_digest(mac.hexdigest(), parts["v1"])
    assert json.loads(body)["type"] == "webhook.ping"
    while True:
        log = json.loads(remote("deliveries", "1", "--json").stdout)
        if log["items"][0]["status"] == "delivered":
            break
        assert time.monotonic() < deadline, log
        time.sleep(0.2)
    assert log["items"][0]["last_status_code"] == 204
    bad = remote("add", "--endpoint", receiver, "--events", "nope")
    assert bad.returncode == 1 and "events:" in bad.stderr
    missing = remote("show", "99")
    assert missing.returncode == 1 and "does not exist" in missing.stderr
