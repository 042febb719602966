"""The `pagecast` command, run as a real process on a fresh data directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

PAGECAST = str(Path(sys.executable).parent / "pagecast")


def run(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    # PYTHONDONTWRITEBYTECODE is dropped: each process would compile every module it imports
    # again (seconds a command); with it gone, the first process caches the bytecode.
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PAGECAST_")
        and k not in ("DATABASE_URL", "REDIS_URL", "PYTHONDONTWRITEBYTECODE")
    }
    environ |= {"PAGECAST_DATA_DIR": str(data_dir), "PAGECAST_SECRET_KEY": "cli-test-key"} | env
    return subprocess.run(
        [PAGECAST, *args], capture_output=True, text=True, env=environ, timeout=60, check=False
    )


@pytest.fixture(scope="module")
def migrated_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("migrated") / "data"
    migrated = run(path, "db", "upgrade")
    assert migrated.returncode == 0, migrated.stderr
    return path


@pytest.fixture
def data_dir(migrated_dir: Path, tmp_path: Path) -> Path:
    """A data dir with a migrated database (copied: migrating once per test is slow)."""
    return Path(shutil.copytree(migrated_dir, tmp_path / "data"))


def test_help_lists_every_command() -> None:
    result = subprocess.run([PAGECAST, "--help"], capture_output=True, text=True, check=True)
    for command in (
        "serve",
        "web",
        "worker",
        "db",
        "users",
        "tokens",
        "pages",
        "contacts",
        "campaigns",
        "series",
        "simulator",
    ):
        assert f" {command} " in result.stdout, command


def test_users_create_and_tokens_create_print_the_token_last(data_dir: Path) -> None:
    created = run(
        data_dir,
        "users",
        "create",
        "--email",
        "Admin@Example.com",
        "--role",
        "admin",
        "--password",
        "long enough",
    )
    assert created.returncode == 0 and "admin@example.com" in created.stdout
    token = run(data_dir, "tokens", "create", "--user", "admin@example.com")
    assert token.returncode == 0
    assert token.stdout.strip().splitlines()[-1].startswith("pct_")


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        (("users", "create", "--email", "x@example.com", "--role", "superuser"), "role"),
        (("users", "create", "--email", "not-an-email", "--role", "viewer"), "email"),
        (("tokens", "create", "--user", "nobody@example.com"), "No user has the email"),
        (("campaigns", "pause", "999"), "Campaign 999 does not exist"),
    ],
)
def test_failures_print_one_line_and_exit_1(
    data_dir: Path, args: tuple[str, ...], phrase: str
) -> None:
    result = run(data_dir, *args)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and phrase in lines[0], result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (("campaigns", "start", "99999999999"), "campaign_id"),
        (("campaigns", "pause", "0"), "campaign_id"),
        (("campaigns", "resume", "2147483648"), "campaign_id"),
        (("campaigns", "cancel", "--", "-1"), "campaign_id"),
        (("tokens", "revoke", "99999999999999999999"), "token_id"),
        (("pages", "sync", "2147483648"), "page_id"),
        (("pages", "webhook", "0"), "page_id"),
        (("contacts", "import", "--page", "99999999999", __file__), "--page"),
    ],
)
def test_an_id_out_of_range_is_refused_with_the_range_before_anything_runs(
    data_dir: Path, args: tuple[str, ...], name: str
) -> None:
    result = run(data_dir, *args)
    assert result.returncode == 1, result.stderr
    said = result.stderr
    assert len(said.splitlines()) == 1 and said.startswith("Error: "), said
    assert f"Invalid value for '{name}'" in said
    assert "is not an id: ids run from 1 to 2147483647." in said
    assert "Traceback" not in result.stderr and "Overflow" not in result.stderr


def test_worker_names_a_bad_redis_url_with_the_password_masked(data_dir: Path) -> None:
    result = run(data_dir, "worker", REDIS_URL="redsi://:hunter2@localhost:6379")
    assert result.returncode == 1
    line = result.stderr.strip().splitlines()[-1]
    assert "REDIS_URL" in line and "redis://" in line and "hunter2" not in result.stderr


@pytest.mark.parametrize(
    ("args", "variable", "value", "phrase"),
    [
        (("worker",), "PAGECAST_WORKER_NICE", "-3", "greater than or equal to 0"),
        (("web",), "PAGECAST_WORKER_CONCURRENCY", "many", "valid integer"),
        (("db", "upgrade"), "PAGECAST_CHUNK_SIZE", "0", "greater than 0"),
    ],
)
def test_a_bad_setting_is_named_in_one_line(
    data_dir: Path, args: tuple[str, ...], variable: str, value: str, phrase: str
) -> None:
    result = run(data_dir, *args, **{variable: value})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {variable}: "), result.stderr
    assert phrase in lines[0] and "docs/settings.md" in lines[0]


def test_a_worker_lowers_its_own_priority_to_worker_nice(data_dir: Path) -> None:
    # PYTHONDONTWRITEBYTECODE is dropped: each process would compile every module it imports
    # again (seconds a command); with it gone, the first process caches the bytecode.
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PAGECAST_")
        and k not in ("DATABASE_URL", "REDIS_URL", "PYTHONDONTWRITEBYTECODE")
    }
    base = os.getpriority(os.PRIO_PROCESS, 0)
    target = min(19, base + 7)
    assert target > base, "the tests run at nice 19: nothing left to lower"
    environ |= {
        "PAGECAST_DATA_DIR": str(data_dir),
        "PAGECAST_SECRET_KEY": "cli-test-key",
        "PAGECAST_WORKER_NICE": str(target),
    }
    log = data_dir / "worker.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [PAGECAST, "worker"], env=environ, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 30
        while " started (concurrency" not in log.read_text(errors="replace"):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the worker did not start within 30 s"
            time.sleep(0.1)
        assert os.getpriority(os.PRIO_PROCESS, process.pid) == target
        assert f"worker process at nice {target}" in log.read_text()
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_debug_shows_the_traceback(data_dir: Path) -> None:
    result = run(data_dir, "--debug", "tokens", "create", "--user", "nobody@example.com")
    assert result.returncode == 1 and "Traceback" in result.stderr


def test_duplicate_user_is_refused(data_dir: Path) -> None:
    assert (
        run(data_dir, "users", "create", "--email", "a@example.com", "--role", "viewer").returncode
        == 0
    )
    again = run(data_dir, "users", "create", "--email", "a@example.com", "--role", "viewer")
    assert again.returncode == 1 and "already exists" in again.stderr


def test_contacts_import_reports_rows_and_errors(
    data_dir: Path, tmp_path: Path, simulator: object
) -> None:
    from factories import SIM_TOKEN

    url = simulator.url  # type: ignore[attr-defined]
    httpx.post(f"{url}/__sim/reset").raise_for_status()
    httpx.post(
        f"{url}/__sim/pages", json={"page_id": "1001", "name": "Acme", "access_token": SIM_TOKEN}
    ).raise_for_status()
    added = run(data_dir, "pages", "add", "--token", SIM_TOKEN, PAGECAST_GRAPH_API_URL=url)
    assert added.returncode == 0, added.stderr
    assert SIM_TOKEN not in added.stdout + added.stderr
    csv_file = tmp_path / "people.csv"
    csv_file.write_text("psid,first_name,tags\n1,Ana,vip\n2,Ben,\nxx,Bad,\n")
    result = run(data_dir, "contacts", "import", str(csv_file), "--page", "1")
    assert result.returncode == 0, result.stderr
    assert "Import 1 completed: 3 rows read, 2 created, 0 updated, 1 refused." in result.stdout
    assert "row 4, psid:" in result.stderr
    listed = run(data_dir, "contacts", "imports", "--page", "1")
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.strip().splitlines()
    assert header.startswith("ID\tPAGE\tSTATE\tPROGRESS")
    assert row.split("\t")[:4] == ["1", "1", "completed", "100 %"]
    too_many_tags = tmp_path / "tags.csv"
    too_many_tags.write_text("psid,tags\n3," + ";".join(f"t{i}" for i in range(3)) + "\n")
    capped = run(
        data_dir,
        "contacts",
        "import",
        str(too_many_tags),
        "--page",
        "1",
        PAGECAST_IMPORT_MAX_TAGS_PER_CONTACT="2",
    )
    assert capped.returncode == 0, capped.stderr
    assert "0 created, 0 updated, 1 refused" in capped.stdout
    assert "row 2, tags: has 3 tags; a contact may have at most 2" in capped.stderr
    too_large = run(
        data_dir,
        "contacts",
        "import",
        str(csv_file),
        "--page",
        "1",
        PAGECAST_IMPORT_MAX_BYTES="10",
    )
    assert too_large.returncode == 1 and "over the 10-byte limit" in too_large.stderr


def test_serve_migrates_a_fresh_data_dir_and_answers(tmp_path: Path) -> None:
    port = 18000 + os.getpid() % 1000
    # PYTHONDONTWRITEBYTECODE is dropped: each process would compile every module it imports
    # again (seconds a command); with it gone, the first process caches the bytecode.
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PAGECAST_")
        and k not in ("DATABASE_URL", "REDIS_URL", "PYTHONDONTWRITEBYTECODE")
    }
    environ["PAGECAST_DATA_DIR"] = str(tmp_path / "fresh")
    base = os.getpriority(os.PRIO_PROCESS, 0)
    environ["PAGECAST_WORKER_NICE"] = str(min(19, base + 7))  # for workers only: ignored here
    process = subprocess.Popen(
        [PAGECAST, "serve", "--port", str(port)],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, "serve exited early"
                assert time.monotonic() < deadline, "serve did not answer within 30 s"
                time.sleep(0.2)
        assert health.json()["ok"] is True
        assert os.getpriority(os.PRIO_PROCESS, process.pid) == base
        assert httpx.get(f"http://127.0.0.1:{port}/docs").status_code == 200
        assert httpx.get(f"http://127.0.0.1:{port}/api/campaigns").status_code == 401
        assert (tmp_path / "fresh" / "pagecast.db").exists()
        assert (tmp_path / "fresh" / "secret.key").stat().st_mode & 0o777 == 0o600
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=10)
    assert "No users yet" in output


def test_users_sessions_and_sign_out_end_a_users_login_sessions(data_dir: Path) -> None:
    import asyncio

    from sqlalchemy import select

    from pagecast.db import Database
    from pagecast.models import User
    from pagecast.services import sessions

    created = run(data_dir, "users", "create", "--email", "v@example.com", "--role", "viewer")
    assert created.returncode == 0, created.stderr

    async def log_in_twice() -> None:
        db = Database(f"sqlite+aiosqlite:///{data_dir / 'pagecast.db'}")
        async with db.transaction() as session:
            user = (await session.scalars(select(User))).one()
            for agent in ("Firefox", "Safari"):
                await sessions.start(session, user, days=1, user_agent=agent, address="192.0.2.7")
        await db.close()

    asyncio.run(log_in_twice())
    listed = run(data_dir, "users", "sessions", "v@example.com")
    assert listed.returncode == 0 and "Firefox" in listed.stdout and "Safari" in listed.stdout
    ended = run(data_dir, "users", "sign-out", "v@example.com")
    assert ended.returncode == 0 and "2 sessions ended" in ended.stdout
    assert run(data_dir, "users", "sessions", "v@example.com").stdout == (
        "No live sessions for v@example.com.\n"
    )
    unknown = run(data_dir, "users", "sign-out", "nobody@example.com")
    assert unknown.returncode == 1 and "No user has the email" in unknown.stderr


def test_users_timezone_sets_a_users_zone_or_names_the_field(data_dir: Path) -> None:
    created = run(data_dir, "users", "create", "--email", "t@example.com", "--role", "viewer")
    assert created.returncode == 0, created.stderr
    assert run(data_dir, "users", "list").stdout.split("\t")[-1].strip() == "UTC"
    changed = run(data_dir, "users", "timezone", "t@example.com", "asia/manila")
    assert changed.returncode == 0, changed.stderr
    assert "t@example.com now sees times in Asia/Manila" in changed.stdout
    assert run(data_dir, "users", "list").stdout.split("\t")[-1].strip() == "Asia/Manila"
    refused = run(data_dir, "users", "timezone", "t@example.com", "Mars/Base")
    assert refused.returncode == 1 and refused.stderr.startswith("Error: timezone: ")
    assert "IANA" in refused.stderr
    assert run(data_dir, "users", "list").stdout.split("\t")[-1].strip() == "Asia/Manila"
    page = run(data_dir, "pages", "timezone", "987654", "Europe/Berlin")
    assert page.returncode == 1 and "does not exist" in page.stderr
    zone = run(data_dir, "pages", "timezone", "1", "Berlin")
    assert zone.returncode == 1
    assert (
        """timezone: 'Berlin' is not a time zone (did you mean "Europe/Berlin"?)""" in zone.stderr
    )


def test_a_graph_command_on_the_demos_data_dir_says_the_demo_owns_its_page(
    data_dir: Path,
) -> None:
    """`serve --demo`'s Page lives in the simulator inside that process: a command that would
    call Facebook from the demo's data directory says so instead of trying graph.facebook.com
    (and reporting a DNS failure as "a temporary problem")."""
    (data_dir / "demo-app-secret").write_text("demo")
    result = run(
        data_dir,
        "pages",
        "connect-facebook",
        PAGECAST_APP_ID="1517776481860111",
        PAGECAST_APP_SECRET="app-secret",
        PAGECAST_FACEBOOK_USER_TOKEN="EAAUdemo",
    )
    assert result.returncode == 1
    assert "is the data directory of `pagecast serve --demo`" in result.stderr
    assert "Traceback" not in result.stderr
    # With a simulator's Graph URL set, the same directory is used as asked.
    pointed = run(
        data_dir,
        "pages",
        "connect-facebook",
        PAGECAST_APP_ID="1517776481860111",
        PAGECAST_APP_SECRET="app-secret",
        PAGECAST_FACEBOOK_USER_TOKEN="EAAUdemo",
        PAGECAST_GRAPH_API_URL="http://127.0.0.1:9",
    )
    assert "pagecast serve --demo" not in pointed.stderr
