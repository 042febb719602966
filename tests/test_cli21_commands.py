"""Issue 21's command line, each command run as a real process: one-line usage errors,
flags, headers and empty messages, --json, the campaign commands, tokens list, queue,
--data-dir, and --url against a real `pagecast serve`."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from processes import ServeProcess, clean_env
from test_cli import PAGECAST, migrated_dir, run

__all__ = ["migrated_dir"]  # a fixture: each test copies one migrated database


@pytest.fixture
def data_dir(migrated_dir: Path, tmp_path: Path) -> Path:
    """A data dir with a migrated database (copied: migrating once per test is slow)."""
    return Path(shutil.copytree(migrated_dir, tmp_path / "data"))


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


def _sim_page(simulator: Any) -> str:
    """The simulator, reset, with the Page 1001 the tests add; its URL."""
    from factories import SIM_TOKEN

    url = str(simulator.url)
    httpx.post(f"{url}/__sim/reset").raise_for_status()
    httpx.post(
        f"{url}/__sim/pages", json={"page_id": "1001", "name": "Acme", "access_token": SIM_TOKEN}
    ).raise_for_status()
    return url


def _a_page(data_dir: Path, simulator: Any) -> str:
    from factories import SIM_TOKEN

    url = _sim_page(simulator)
    added = run(data_dir, "pages", "add", "--token", SIM_TOKEN, PAGECAST_GRAPH_API_URL=url)
    assert added.returncode == 0, added.stderr
    return url


@pytest.fixture(scope="module")
def page_dir(migrated_dir: Path, simulator: Any) -> Path:
    """A migrated data dir with the Page 1001 added (as Page 1) and three of its people (PSIDs
    11 to 13, 11 tagged vip); tests copy it."""
    path = Path(shutil.copytree(migrated_dir, migrated_dir.parent / "with-page"))
    _a_page(path, simulator)
    people = path.parent / "three.csv"
    people.write_text("psid,tags\n11,vip\n12,\n13,\n")
    imported = run(path, "contacts", "import", str(people), "--page", "1")
    assert imported.returncode == 0, imported.stderr
    return path


@pytest.fixture
def with_page(page_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(page_dir, tmp_path / "data"))


def _created_id(result: subprocess.CompletedProcess[str]) -> int:
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Created draft campaign "), result.stdout
    return int(result.stdout.split()[3])


def test_campaigns_create_from_flags_or_a_file_then_show_and_list(
    with_page: Path, tmp_path: Path
) -> None:
    created = run(with_page, "campaigns", "create", "--page", "1", "--name", "Sale", "--text", "Hi")
    assert created.stdout.startswith("Created draft campaign 1 (Sale)."), created.stderr
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
    from_file = run(with_page, "campaigns", "create", "--file", str(body), "--json")
    assert from_file.returncode == 0, from_file.stderr
    assert json.loads(from_file.stdout)["audience"]["include"] == ["vip"]
    refused = run(with_page, "campaigns", "create", "--page", "1", "--name", "", "--text", "x")
    assert "name: is empty" in _one_error_line(refused)

    shown = run(with_page, "campaigns", "show", "1", "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["status"] == "draft"
    listed = run(with_page, "campaigns", "list").stdout.splitlines()
    assert listed[0].startswith("ID\tSTATUS\tPAGE\tNAME") and len(listed) == 3


def test_campaigns_create_to_chosen_psids_or_a_segment(with_page: Path) -> None:
    def create(*audience: str) -> subprocess.CompletedProcess[str]:
        flags = ("--page", "1", "--name", "Few", "--text", "Hi", "--json")
        return run(with_page, "campaigns", "create", *flags, *audience)

    chosen = create("--audience", "psids", "--psid", "11", "--psid", "12,13")
    assert chosen.returncode == 0, chosen.stderr
    assert json.loads(chosen.stdout)["audience"] == {
        "type": "contacts",
        "psids": ["11", "12", "13"],
    }
    bad = create("--audience", "psids", "--psid", "ana")
    assert "psids[0]: 'ana' is not a Page-scoped id" in _one_error_line(bad)
    assert "--psid needs --audience psids" in _one_error_line(create("--psid", "11"))
    segment = run(
        with_page, "segments", "create", "--page", "1", "--name", "VIPs", "--tags-any", "vip"
    )
    assert segment.returncode == 0, segment.stderr
    targeted = create("--audience", "segment", "--segment", "1")
    assert targeted.returncode == 0, targeted.stderr
    assert json.loads(targeted.stdout)["audience"] == {"type": "segment", "segment_id": 1}


def test_campaigns_duplicate_schedule_retry_failed_and_delete(with_page: Path) -> None:
    run(with_page, "campaigns", "create", "--page", "1", "--name", "Sale", "--text", "Hi")
    copied = run(with_page, "campaigns", "duplicate", "1")
    assert copied.returncode == 0, copied.stderr
    assert "Created draft campaign 2 (Sale (copy)) from 1" in copied.stdout
    scheduled = run(with_page, "campaigns", "schedule", "2", "--at", "2099-01-02T09:30+01:00")
    assert scheduled.returncode == 0, scheduled.stderr
    assert "is scheduled for 2099-01-02T08:30:00" in scheduled.stdout
    past = run(with_page, "campaigns", "schedule", "1", "--at", "2001-01-01T00:00")
    assert "is in the past" in _one_error_line(past)

    draft = run(with_page, "campaigns", "retry-failed", "1")
    assert "only allowed when it is sending, paused, completed" in _one_error_line(draft)
    # A draft never moves by itself: watching it ends at once instead of never.
    watched = run(with_page, "campaigns", "watch", "1", "--every", "0.1")
    assert "is a draft: nothing is sending" in _one_error_line(watched)

    unasked = run(with_page, "campaigns", "delete", "1")
    assert unasked.returncode == 1 and "Nothing deleted" in unasked.stderr
    deleted = run(with_page, "campaigns", "delete", "1", "--yes")
    assert deleted.returncode == 0 and "Campaign 1 deleted." in deleted.stdout
    assert "does not exist" in _one_error_line(run(with_page, "campaigns", "show", "1"))


@pytest.fixture(scope="module")
def served(migrated_dir: Path, simulator: Any) -> Iterator[tuple[str, str, str]]:
    """One real `pagecast serve` (web and worker) for the module's --url tests, on a data dir
    with a Page and two contacts in their window; its URL, an admin's token, the Graph URL."""
    data_dir = Path(shutil.copytree(migrated_dir, migrated_dir.parent / "served"))
    graph = _a_page(data_dir, simulator)
    people = data_dir.parent / "people.csv"
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    people.write_text(f"psid,first_name,last_inbound_at\n11,Ana,{now}\n12,Ben,{now}\n")
    imported = run(data_dir, "contacts", "import", str(people), "--page", "1")
    assert imported.returncode == 0, imported.stderr
    made = run(data_dir, "users", "create", "--email", "a@example.com", "--role", "admin")
    assert made.returncode == 0, made.stderr
    token = run(data_dir, "tokens", "create", "--user", "a@example.com").stdout.split()[-1]
    env = clean_env(
        {
            "PAGECAST_DATA_DIR": str(data_dir),
            "PAGECAST_SECRET_KEY": "cli-test-key",
            "PAGECAST_GRAPH_API_URL": graph,
        }
    )
    serve = ServeProcess(data_dir.parent, env).start()
    try:
        yield serve.url, token, graph
    finally:
        serve.stop()


def _remote(served: tuple[str, str, str], tmp_path: Path, *args: str) -> Any:
    url, token, _ = served
    # No database on this side: everything goes over the API (`laptop` is never created).
    return run(tmp_path / "laptop", "--url", url, *args, PAGECAST_TOKEN=token)


def test_url_lists_pages_and_tokens_and_refuses_what_it_cannot_do(
    tmp_path: Path, served: tuple[str, str, str]
) -> None:
    pages = _remote(served, tmp_path, "pages", "list", "--json")
    assert pages.returncode == 0, pages.stderr
    assert [p["name"] for p in json.loads(pages.stdout)] == ["Acme"]
    tokens = _remote(served, tmp_path, "tokens", "list")
    assert tokens.stdout.splitlines()[0].startswith("ID\tUSER\tNAME\tPREFIX"), tokens.stderr
    for local_only in (("queue",), ("users", "list"), ("contacts", "imports")):
        assert "not with --url" in _one_error_line(_remote(served, tmp_path, *local_only))
    wrong = run(
        tmp_path / "laptop", "--url", served[0], "--token", "pct_wrong", "campaigns", "list"
    )
    assert "refused the token (401)" in _one_error_line(wrong)
    assert "pct_wrong" not in wrong.stderr + wrong.stdout
    assert not (tmp_path / "laptop").exists()


def test_url_creates_starts_watches_and_retries_a_campaign(
    tmp_path: Path, served: tuple[str, str, str], simulator: Any
) -> None:
    _sim_page(simulator)  # another test may have reset the simulator
    created = _remote(
        served,
        tmp_path,
        "campaigns",
        "create",
        "--page",
        "1",
        "--name",
        "Remote",
        "--text",
        "Hi {{first_name}}",
    )
    cid = str(_created_id(created))
    started = _remote(served, tmp_path, "campaigns", "start", cid)
    assert started.returncode == 0, started.stderr
    watched = _remote(served, tmp_path, "campaigns", "watch", cid, "--every", "0.2")
    assert watched.returncode == 0, watched.stderr
    assert f"Campaign {cid} (Remote) is completed" in watched.stdout
    shown = json.loads(_remote(served, tmp_path, "campaigns", "show", cid, "--json").stdout)
    assert shown["status"] == "completed" and shown["counts"]["total"] == 2
    paused = _remote(served, tmp_path, "campaigns", "pause", cid)
    assert "pausing is only allowed" in _one_error_line(paused)
    again = _remote(served, tmp_path, "campaigns", "watch", cid)  # finished: ends at once
    assert again.returncode == 0 and "is completed" in again.stdout, again.stderr
    retried = _remote(served, tmp_path, "campaigns", "retry-failed", cid)
    assert retried.returncode == 0, retried.stderr
    queued = int(retried.stdout.split(" failed deliveries queued again.")[0])
    assert 0 <= queued <= shown["counts"]["failed"], retried.stdout


def test_url_duplicates_schedules_and_deletes_a_draft(
    tmp_path: Path, served: tuple[str, str, str]
) -> None:
    created = _remote(
        served, tmp_path, "campaigns", "create", "--page", "1", "--name", "Later", "--text", "Hi"
    )
    original = _created_id(created)
    copy = _remote(served, tmp_path, "campaigns", "duplicate", str(original))
    assert copy.returncode == 0 and f"(Later (copy)) from {original}" in copy.stdout, copy.stderr
    cid = copy.stdout.split()[3]
    later = _remote(served, tmp_path, "campaigns", "schedule", cid, "--at", "2099-01-02T09:30")
    assert later.returncode == 0 and "scheduled for 2099-01-02T09:30:00" in later.stdout
    assert _remote(served, tmp_path, "campaigns", "delete", cid, "--yes").returncode == 0
    assert "does not exist" in _one_error_line(_remote(served, tmp_path, "campaigns", "show", cid))


def test_url_of_a_server_that_is_not_pagecast_is_one_line(tmp_path: Path) -> None:
    """A web page (200) or an error page (404) instead of the API: one line, no page, no
    traceback, and the token never shown."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Site(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path.startswith("/api/pages") else 404)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html>\n<body>\nA shop\n</body>\n</html>\n")

        def log_message(self, *args: Any) -> None:
            pass

    site = ThreadingHTTPServer(("127.0.0.1", 0), Site)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{site.server_address[1]}"
    try:
        for command in (("pages", "list"), ("campaigns", "list")):
            done = run(tmp_path, "--url", url, "--token", "pct_secret", *command)
            line = _one_error_line(done)
            assert "no Pagecast API body" in line and "pct_secret" not in done.stderr, line
    finally:
        site.shutdown()
        site.server_close()
