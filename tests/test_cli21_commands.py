"""Issue 21's command line, each command run as a real process: one-line usage errors,
flags, headers and empty messages, --json, the campaign commands, tokens list, queue,
--data-dir, and --url against a real `pagecast serve`."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from processes import clean_env, free_port
from test_cli import PAGECAST, run


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "╭" not in result.stderr and "Traceback" not in result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        (("campaigns", "show", "abc"), "Invalid value for 'campaign_id'"),
        (("contacts", "import", "nofile.csv", "--page", "1"), "file 'nofile.csv' does not exist"),
        (("campaigns", "show"), "Missing argument 'campaign_id'"),
        (("campaigns", "frobnicate"), "No such command 'frobnicate'"),
        (("serve", "--demo", "yes"), "unexpected extra argument"),
    ],
)
def test_a_usage_error_is_one_line_on_stderr_with_exit_1(
    data_dir: Path, args: tuple[str, ...], phrase: str
) -> None:
    line = _one_error_line(run(data_dir, *args))
    assert phrase in line and "--help`" in line


def test_boolean_options_are_flags_in_the_help() -> None:
    for command in (("serve",), ("users", "create"), ("campaigns", "delete"), ("queue",)):
        shown = subprocess.run(
            [PAGECAST, *command, "--help"], capture_output=True, text=True, check=True
        ).stdout
        assert "<bool>" not in shown and "BOOLEAN" not in shown, shown


def test_an_invalid_email_is_explained_in_words(data_dir: Path) -> None:
    line = _one_error_line(run(data_dir, "users", "create", "--email", "bad", "--role", "viewer"))
    assert line == "Error: email: is not an email address; write it as name@example.com"


def test_empty_lists_print_a_sentence_and_json_an_empty_array(data_dir: Path) -> None:
    for args, said in (
        (("campaigns", "list"), "No campaigns."),
        (("tokens", "list"), "No API tokens."),
        (("pages", "list"), "No Pages."),
        (("users", "list"), "No users."),
        (("contacts", "imports"), "No imports."),
    ):
        text = run(data_dir, *args)
        assert text.returncode == 0 and text.stdout.startswith(said), (args, text.stdout)
        as_json = run(data_dir, *args, "--json")
        assert as_json.returncode == 0 and json.loads(as_json.stdout) == [], args


def test_campaigns_start_without_redis_says_so_once(data_dir: Path) -> None:
    line = _one_error_line(
        run(data_dir, "campaigns", "start", "1", PAGECAST_REDIS_URL="redis://127.0.0.1:1/0")
    )
    assert "Redis at 127.0.0.1:1 is unreachable" in line


def test_a_hint_names_the_command_not_the_api_route(data_dir: Path) -> None:
    line = _one_error_line(run(data_dir, "campaigns", "show", "42"))
    assert (
        line == "Error: Campaign 42 does not exist. List campaigns with `pagecast campaigns list`."
    )


def test_data_dir_flag_chooses_where_the_database_lives(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    result = run(tmp_path / "unused", "--data-dir", str(elsewhere), "users", "list")
    assert result.returncode == 0, result.stderr
    assert (elsewhere / "pagecast.db").exists() and not (tmp_path / "unused").exists()


def test_queue_counts_jobs_by_state_and_retries_failed_ones(data_dir: Path) -> None:
    counts = run(data_dir, "queue", "--json")
    assert counts.returncode == 0, counts.stderr
    assert json.loads(counts.stdout)["failed"] == 0
    text = run(data_dir, "queue", "--retry-failed")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0] == "Failed jobs queued again." and lines[1] == "STATE\tJOBS"
    assert "failed\t0" in lines


def _a_page(data_dir: Path, simulator: Any) -> str:
    from factories import SIM_TOKEN

    url = str(simulator.url)
    httpx.post(f"{url}/__sim/reset").raise_for_status()
    httpx.post(
        f"{url}/__sim/pages", json={"page_id": "1001", "name": "Acme", "access_token": SIM_TOKEN}
    ).raise_for_status()
    added = run(data_dir, "pages", "add", "--token", SIM_TOKEN, PAGECAST_GRAPH_API_URL=url)
    assert added.returncode == 0, added.stderr
    return url


@pytest.mark.timeout(600)  # some 20 commands, each a process: seconds each on loaded cores
def test_campaigns_create_show_duplicate_schedule_and_delete(
    data_dir: Path, tmp_path: Path, simulator: Any
) -> None:
    _a_page(data_dir, simulator)
    created = run(data_dir, "campaigns", "create", "--page", "1", "--name", "Sale", "--text", "Hi")
    assert created.returncode == 0, created.stderr
    assert created.stdout.startswith("Created draft campaign 1 (Sale).")
    body = tmp_path / "campaign.json"
    body.write_text(
        json.dumps(
            {
                "page_id": 1,
                "name": "Tagged",
                "content": {"text": "Hello"},
                "audience": {"type": "tags", "include": ["vip"]},
            }
        )
    )
    from_file = run(data_dir, "campaigns", "create", "--file", str(body), "--json")
    assert from_file.returncode == 0, from_file.stderr
    assert json.loads(from_file.stdout)["audience"]["include"] == ["vip"]
    refused = run(data_dir, "campaigns", "create", "--page", "1", "--name", "", "--text", "x")
    assert "name: is empty" in _one_error_line(refused)

    shown = run(data_dir, "campaigns", "show", "1", "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["status"] == "draft"
    listed = run(data_dir, "campaigns", "list").stdout.splitlines()
    assert listed[0].startswith("ID\tSTATUS\tPAGE\tNAME") and len(listed) == 3

    copied = run(data_dir, "campaigns", "duplicate", "1")
    assert (
        copied.returncode == 0 and "Created draft campaign 3 (Sale (copy)) from 1" in copied.stdout
    )
    scheduled = run(data_dir, "campaigns", "schedule", "3", "--at", "2099-01-02T09:30+01:00")
    assert scheduled.returncode == 0, scheduled.stderr
    assert "is scheduled for 2099-01-02T08:30:00" in scheduled.stdout
    past = run(data_dir, "campaigns", "schedule", "1", "--at", "2001-01-01T00:00")
    assert "is in the past" in _one_error_line(past)

    draft = run(data_dir, "campaigns", "retry-failed", "1")
    assert "only allowed when it is sending, paused, completed" in _one_error_line(draft)

    unasked = run(data_dir, "campaigns", "delete", "2")
    assert unasked.returncode == 1 and "Nothing deleted" in unasked.stderr
    deleted = run(data_dir, "campaigns", "delete", "2", "--yes")
    assert deleted.returncode == 0 and "Campaign 2 deleted." in deleted.stdout
    assert "does not exist" in _one_error_line(run(data_dir, "campaigns", "show", "2"))


@pytest.fixture
def served(data_dir: Path, simulator: Any) -> Iterator[tuple[str, str, str]]:
    """A real `pagecast serve` (web and worker) on `data_dir`, a Page, and an admin's token."""
    graph = _a_page(data_dir, simulator)
    people = data_dir.parent / "people.csv"
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    people.write_text(f"psid,first_name,last_inbound_at\n11,Ana,{now}\n12,Ben,{now}\n")
    imported = run(data_dir, "contacts", "import", str(people), "--page", "1")
    assert imported.returncode == 0, imported.stderr
    made = run(data_dir, "users", "create", "--email", "a@example.com", "--role", "admin")
    assert made.returncode == 0, made.stderr
    token = run(data_dir, "tokens", "create", "--user", "a@example.com").stdout.split()[-1]
    port = free_port()
    env = clean_env(
        {
            "PAGECAST_DATA_DIR": str(data_dir),
            "PAGECAST_SECRET_KEY": "cli-test-key",
            "PAGECAST_GRAPH_API_URL": graph,
        }
    )
    log = open(data_dir.parent / "serve.log", "wb")  # noqa: SIM115  (closed below)
    process = subprocess.Popen(
        [PAGECAST, "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, (data_dir.parent / "serve.log").read_text()
            assert time.monotonic() < deadline, "serve did not answer within 30 s"
            time.sleep(0.2)
        yield url, token, graph
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@pytest.mark.timeout(600)  # a `serve`, a send and some 20 commands, each a process
def test_url_drives_a_remote_pagecast_over_its_api(
    tmp_path: Path, served: tuple[str, str, str]
) -> None:
    url, token, _ = served
    laptop = tmp_path / "laptop"  # no database here: everything goes over the API

    def remote(*args: str) -> subprocess.CompletedProcess[str]:
        return run(laptop, "--url", url, *args, PAGECAST_TOKEN=token)

    pages = remote("pages", "list", "--json")
    assert pages.returncode == 0, pages.stderr
    assert [p["name"] for p in json.loads(pages.stdout)] == ["Acme"]
    assert remote("tokens", "list").stdout.splitlines()[0].startswith("ID\tUSER\tNAME\tPREFIX")
    created = remote(
        "campaigns", "create", "--page", "1", "--name", "Remote", "--text", "Hi {{first_name}}"
    )
    assert created.returncode == 0, created.stderr
    started = remote("campaigns", "start", "1")
    assert started.returncode == 0, started.stderr
    watched = remote("campaigns", "watch", "1", "--every", "0.2")
    assert watched.returncode == 0, watched.stderr
    assert "Campaign 1 (Remote) is completed" in watched.stdout
    shown = json.loads(remote("campaigns", "show", "1", "--json").stdout)
    assert shown["status"] == "completed" and shown["counts"]["total"] == 2
    assert "pausing is only allowed" in _one_error_line(remote("campaigns", "pause", "1"))
    retried = remote("campaigns", "retry-failed", "1")
    assert retried.returncode == 0, retried.stderr
    queued = int(retried.stdout.split(" failed deliveries queued again.")[0])
    assert 0 <= queued <= shown["counts"]["failed"], retried.stdout
    copy = remote("campaigns", "duplicate", "1")
    assert copy.returncode == 0 and "Created draft campaign 2" in copy.stdout
    later = remote("campaigns", "schedule", "2", "--at", "2099-01-02T09:30")
    assert later.returncode == 0 and "scheduled for 2099-01-02T09:30:00" in later.stdout
    assert remote("campaigns", "delete", "2", "--yes").returncode == 0
    assert "does not exist" in _one_error_line(remote("campaigns", "show", "2"))
    wrong = run(laptop, "--url", url, "--token", "pct_wrong", "campaigns", "list")
    assert "refused the token (401)" in _one_error_line(wrong)
    for local_only in (("queue",), ("users", "list"), ("contacts", "imports")):
        assert "not with --url" in _one_error_line(remote(*local_only))
    assert not laptop.exists()
