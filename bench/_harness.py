"""Shared pieces of the benchmark suite: processes, databases, seeding, tables and results.

Every benchmark starts its own `pagecast simulator` (with `--latency-ms`), its own private
`redis-server` on a free port, its own database (a bench-specific PostgreSQL database that is
dropped and re-created, or a SQLite file) and `pagecast worker` processes, as in production.
Nothing here imports from `tests/`.
"""

from __future__ import annotations

import asyncio
import compileall
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy import select, text, update
from sqlalchemy.engine import make_url

from pagecast import actions
from pagecast.context import AppContext
from pagecast.db import Database, upgrade
from pagecast.models import Campaign, CampaignStatus, Page, Role
from pagecast.permissions import Actor
from pagecast.schemas import CampaignCreate, Content, PageCreate, UserCreate
from pagecast.services import campaigns, pages, tokens, users
from pagecast.settings import Settings, normalise_database_url

__all__ = [
    "PG_SERVER",
    "Bench",
    "Redis",
    "Simulator",
    "Worker",
    "cpu_seconds",
    "free_port",
    "machine",
    "machine_cpu_seconds",
    "median",
    "postgres_cpu_seconds",
    "print_table",
    "write_results",
]

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
PAGECAST = shutil.which("pagecast") or str(Path(sys.executable).with_name("pagecast"))
PG_SERVER = os.environ.get("PAGECAST_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
SECRET_KEY = "bench-secret-key-0123456789abcdef0123456789"
TEXT = "Hello {{first_name|there}}, our autumn offer is live."
TEXT_B = "Hello {{first_name|there}}, our winter offer is live."  # A/B runs: same length
PSID_BASE = 7 * 10**15


def compile_bytecode() -> None:
    """Write the bytecode caches of Pagecast and its dependencies before any process starts.

    Python writes a module's cache on its first import, unless PYTHONDONTWRITEBYTECODE is
    set (as on the development machine) or the folder is read-only; without the caches every
    process compiles every module from source at each start, which raised a worker's peak
    RSS by about 5 MB and its start time by seconds. A deployment imports from caches (or
    installs with UV_COMPILE_BYTECODE=1), so the benchmarks measure that. Up-to-date caches
    are left alone: after the first run this takes about 2 s."""
    import pagecast

    paths = sysconfig.get_paths()
    for folder in sorted({paths["purelib"], paths["platlib"], str(Path(pagecast.__file__).parent)}):
        compileall.compile_dir(folder, quiet=2, workers=0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def psid(i: int) -> str:
    return str(PSID_BASE + i)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def busiest_second(times: Sequence[float], window: float = 1.0) -> int:
    """The most calls in any sliding `window` of `times` (seconds): what Graph's per-second
    limit counts, read from the simulator's call log."""
    ordered = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(ordered):
        while t - ordered[lo] >= window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


# ------------------------------------------------------------------ machine facts


def machine(pg_url: str | None = None) -> dict[str, Any]:
    """Cores, Python, Redis and PostgreSQL versions, load: printed above every table."""
    facts: dict[str, Any] = {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    try:
        out = subprocess.run(
            [_redis_binary(), "--version"], capture_output=True, text=True, timeout=5
        ).stdout
        facts["redis"] = next(p for p in out.split() if p.startswith("v=")).removeprefix("v=")
    except Exception:
        facts["redis"] = "?"
    if pg_url:
        facts["postgresql"] = asyncio.run(_pg_version())
    return facts


async def _pg_version() -> str:
    try:
        conn = await _pg_admin()
    except Exception:
        return "unavailable"
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


def _redis_binary() -> str:
    return shutil.which("redis-server") or str(Path(sys.executable).with_name("redis-server"))


# ------------------------------------------------------------------ processes


def _wait_http(url: str, proc: subprocess.Popen[bytes], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"{what} did not answer within {timeout:.0f} s")


class Simulator:
    """A `pagecast simulator` process on a free loopback port."""

    def __init__(
        self, workdir: Path, *, latency_ms: str = "0", seed: int = 1, nice: int = 0
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.latency_ms = latency_ms
        args = [PAGECAST, "simulator", "--port", str(self.port), "--seed", str(seed)]
        args += ["--latency-ms", latency_ms]
        self.log = workdir / f"simulator-{self.port}.log"
        # `nice` < 0 (root only) lets the simulator, which stands in for Meta's own machines,
        # take the CPU ahead of the processes under test when both want it.
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_niced(nice)
            )
        _wait_http(self.url + "/__sim/stats", self.proc, "pagecast simulator")
        self.http = httpx.Client(base_url=self.url, timeout=120)
        self.post("/__sim/webhook", {"enabled": False})

    def post(self, path: str, body: Any) -> Any:
        response = self.http.post(path, json=body)
        if response.status_code >= 400:
            raise SystemExit(f"simulator {path}: {response.status_code} {response.text}")
        return response.json()

    def get(self, path: str, **params: Any) -> Any:
        return self.http.get(path, params=params).json()

    def reset(self) -> None:
        self.post("/__sim/reset", {})
        self.post("/__sim/webhook", {"enabled": False})

    def add_page(self, page_id: str, token: str, *, per_second: int | None = None) -> None:
        self.post(
            "/__sim/pages",
            {
                "page_id": page_id,
                "name": f"Bench {page_id}",
                "access_token": token,
                "engaged_users": 10**6,
                "subscribe": False,
            },
        )
        if per_second is not None:
            self.post("/__sim/limits", {"page_id": page_id, "per_second_text": per_second})

    def add_people(self, page_id: str, start: int, count: int) -> None:
        for first in range(start, start + count, 20_000):
            last = min(first + 20_000, start + count)
            self.post(
                "/__sim/users",
                [
                    {
                        "page_id": page_id,
                        "psid": psid(i),
                        "first_name": f"F{i}",
                        "last_name": "L",
                        "last_user_action": "now",
                    }
                    for i in range(first, last)
                ],
            )

    def stats(self) -> dict[str, Any]:
        return dict(self.get("/__sim/stats"))

    def calls(self, page_id: str) -> list[dict[str, Any]]:
        return list(self.get("/__sim/calls", page_id=page_id, limit=200_000)["calls"])

    def stop(self) -> None:
        self.http.close()
        _stop(self.proc)


class Redis:
    """A private redis-server on a free loopback port (AOF on, as in production)."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        directory = workdir / f"redis-{self.port}"
        directory.mkdir(parents=True)
        args = [_redis_binary(), "--bind", "127.0.0.1", "--port", str(self.port)]
        args += ["--dir", str(directory), "--appendonly", "yes", "--appendfsync", "everysec"]
        args += ["--save", "", "--maxmemory-policy", "noeviction"]
        with open(directory / "redis.log", "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while not self._ping():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"redis-server did not start (see {directory / 'redis.log'})")
            time.sleep(0.05)

    def _ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def command(self, *words: str) -> str:
        return subprocess.run(
            ["redis-cli", "-p", str(self.port), *words], capture_output=True, text=True, timeout=10
        ).stdout

    def used_memory(self) -> int:
        for line in self.command("INFO", "memory").splitlines():
            if line.startswith("used_memory:"):
                return int(line.split(":")[1])
        return 0

    def flush(self) -> None:
        self.command("FLUSHDB")

    def stop(self) -> None:
        _stop(self.proc)


class Web:
    """One `pagecast web` process (the API) on a free port; `pagecast serve` (the API and a
    worker in one process) with `command="serve"`."""

    def __init__(
        self, workdir: Path, env: dict[str, str], *, nice: int = 0, command: str = "web"
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"web-{self.port}.log"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [PAGECAST, command, "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_niced(nice),
            )
        _wait_http(self.url + "/healthz", self.proc, f"pagecast {command}", timeout=60)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        _stop(self.proc)


def _niced(nice: int) -> Callable[[], None] | None:
    """A `preexec_fn` that runs the child at `nice` (negative values need root)."""
    return (lambda: os.nice(nice)) if nice else None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time process `pid` used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds() -> float | None:
    """User + system CPU time the PostgreSQL server used so far (Linux /proc): every process
    named `postgres` (the server, its background processes and every backend, whatever its
    database), plus what their exited children used (cutime + cstime), so a backend that
    ends between two readings still counts. None when no such process is visible."""
    ticks, seen = 0, False
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # the process ended meanwhile
            continue
        name, fields = stat[stat.index("(") + 1 : stat.rindex(")")], stat.rsplit(")", 1)[1]
        if name == "postgres":
            seen = True
            ticks += sum(int(f) for f in fields.split()[11:15])
    return ticks / os.sysconf("SC_CLK_TCK") if seen else None


def machine_cpu_seconds() -> tuple[float, float]:
    """Busy and idle CPU time of the whole machine so far, all cores together (/proc/stat;
    waiting for I/O counts as idle, time stolen by a hypervisor as busy)."""
    user, nice, system, idle, iowait, irq, softirq, steal = (
        int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq + steal) / tick, (idle + iowait) / tick


class Worker:
    """One `pagecast worker` process, as in production."""

    def __init__(self, workdir: Path, env: dict[str, str], *, concurrency: int) -> None:
        self.log = workdir / f"worker-{free_port()}.log"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [PAGECAST, "worker", "--concurrency", str(concurrency)],
                cwd=workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while " started (concurrency" not in self.log.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                _stop(self.proc)
                raise SystemExit(f"worker did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.05)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def peak_rss_mb(self) -> float:
        """VmHWM: the most resident memory the process ever had."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        _stop(self.proc, timeout=30)


def _stop(proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


# ------------------------------------------------------------------ databases


async def _pg_admin() -> asyncpg.Connection:
    parsed = make_url(PG_SERVER)
    return await asyncpg.connect(
        host=parsed.host, port=parsed.port or 5432, user=parsed.username, database="postgres"
    )


async def fresh_postgres(name: str) -> str:
    """Drop and re-create the bench database `name`; returns its SQLAlchemy URL."""
    conn = await _pg_admin()
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return normalise_database_url(f"{PG_SERVER}/{name}")


# ------------------------------------------------------------------ the stack


class Bench:
    """Simulator + Redis + database + workers + an in-process app context for one benchmark."""

    def __init__(
        self,
        name: str,
        *,
        latency_ms: str = "0",
        backend: str = "postgresql",
        env: dict[str, str] | None = None,
        sim_nice: int = 0,
    ) -> None:
        self.name = name
        compile_bytecode()
        self.workdir = Path(tempfile.mkdtemp(prefix=f"pagecast-bench-{name}-"))
        self.backend = backend
        self.latency_ms = latency_ms
        self.extra_env = env or {}
        self.sim = Simulator(self.workdir, latency_ms=latency_ms, nice=sim_nice)
        self.redis = Redis(self.workdir)
        self.workers: list[Worker] = []
        self.webs: list[Web] = []
        self.db_url = ""
        self.ctx: AppContext | None = None

    async def fresh_database(self) -> None:
        """A new, migrated database (and a flushed Redis) for the next run."""
        if self.ctx is not None:
            await self.ctx.close()
        if self.backend == "postgresql":
            self.db_url = await fresh_postgres(f"pagecast_bench_{self.name}")
        else:
            path = self.workdir / "bench.db"
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            self.db_url = f"sqlite+aiosqlite:///{path}"
        self.redis.flush()
        self.sim.reset()
        settings = Settings(
            database_url=self.db_url,
            redis_url=self.redis.url,
            graph_api_url=self.sim.url,
            secret_key=SECRET_KEY,
            data_dir=self.workdir / "data",
        )
        self.ctx = AppContext(settings)
        await upgrade(self.ctx.db, "head")

    @property
    def db(self) -> Database:
        assert self.ctx is not None
        return self.ctx.db

    def worker_env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("PAGECAST_") and k not in ("REDIS_URL", "DATABASE_URL")
        }
        env.update(
            {
                # The one setting a benchmark passes through: compare the event loops with
                # `PAGECAST_EVENT_LOOP=asyncio uv run python bench/...`.
                "PAGECAST_EVENT_LOOP": os.environ.get("PAGECAST_EVENT_LOOP", "auto"),
                "PAGECAST_DATABASE_URL": self.db_url,
                "PAGECAST_REDIS_URL": self.redis.url,
                "PAGECAST_GRAPH_API_URL": self.sim.url,
                "PAGECAST_SECRET_KEY": SECRET_KEY,
                "PAGECAST_DATA_DIR": str(self.workdir / "data"),
                "PAGECAST_LOG_LEVEL": "INFO",
                # Webhooks are off in the benchmarks, so no echo ever settles an ambiguous
                # send (a timeout): settle them after 5 s instead of 10 minutes.
                "PAGECAST_UNKNOWN_GRACE": "5",
                **self.extra_env,
            }
        )
        # Compare chunk sizes with `PAGECAST_CHUNK_SIZE=500 uv run python bench/...`.
        if chunk := os.environ.get("PAGECAST_CHUNK_SIZE"):
            env["PAGECAST_CHUNK_SIZE"] = chunk
        return env

    def start_workers(
        self, count: int, *, concurrency: int = 100, batch: int | None = None, nice: int = 0
    ) -> list[Worker]:
        env = self.worker_env()
        if batch is not None:
            env["PAGECAST_SEND_BATCH_SIZE"] = str(batch)
        if nice:
            env["PAGECAST_WORKER_NICE"] = str(nice)
        started = [Worker(self.workdir, env, concurrency=concurrency) for _ in range(count)]
        self.workers += started
        return started

    async def api_token(self) -> str:
        """An admin's API token, for calling `pagecast web` like a client would."""
        async with self.db.transaction() as session:
            user = await users.create(
                session,
                Actor.system(),
                UserCreate(email=f"bench{time.time_ns()}@example.com", role=Role.ADMIN),
            )
            _, raw = await tokens.create(session, Actor.system(), user, "bench")
        return raw

    def start_web(self, *, nice: int = 0, command: str = "web") -> Web:
        web = Web(self.workdir, self.worker_env(), nice=nice, command=command)
        self.webs.append(web)
        return web

    def stop_workers(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.workers = []

    async def add_page(
        self, fb_page_id: str, *, send_rate: float, contacts: int, sim_people: int | None = None
    ) -> int:
        """A connected Page with `contacts` contacts inside the window (and the same people in
        the simulator, or the first `sim_people` of them). Returns the Page's id."""
        token = f"EAAGbench{fb_page_id}"
        self.sim.add_page(fb_page_id, token, per_second=None)
        assert self.ctx is not None
        async with self.db.transaction() as session:
            page = await pages.connect(
                session,
                Actor.system(),
                self.ctx.vault,
                PageCreate(access_token=token),
                verify=self.ctx.verify_token,
                default_send_rate=40,
            )
            # The schema caps a Page at Meta's 300/s; "out of the way" needs the row itself.
            await session.execute(
                update(Page).where(Page.id == page.id).values(send_rate=send_rate)
            )
            page_id = page.id
        offset = int(fb_page_id[-3:]) * 10**7  # distinct PSIDs per Page
        await self.insert_contacts(page_id, offset, contacts)
        self.sim.add_people(fb_page_id, offset, contacts if sim_people is None else sim_people)
        return page_id

    async def insert_contacts(self, page_id: int, offset: int, count: int) -> None:
        """`count` contacts who wrote an hour ago, inserted by the database itself."""
        if self.backend == "postgresql":
            sql = text(
                "INSERT INTO contacts (page_id, psid, first_name, last_name, last_inbound_at, "
                "created_at, updated_at) SELECT :page, (CAST(:base AS bigint) + g)::text, 'F' || g, 'L', "
                "now() - interval '1 hour', now(), now() FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) g"
            )
        else:
            sql = text(
                "WITH RECURSIVE g(x) AS (SELECT :lo UNION ALL SELECT x + 1 FROM g WHERE x < :hi) "
                "INSERT INTO contacts (page_id, psid, first_name, last_name, last_inbound_at, "
                "created_at, updated_at) SELECT :page, CAST(:base + x AS TEXT), 'F' || x, 'L', "
                "datetime('now', '-1 hour'), datetime('now'), datetime('now') FROM g"
            )
        step = 200_000
        for lo in range(offset, offset + count, step):
            hi = min(lo + step, offset + count) - 1
            async with self.db.transaction() as session:
                await session.execute(sql, {"page": page_id, "base": PSID_BASE, "lo": lo, "hi": hi})
        if self.backend == "postgresql":
            async with self.db.transaction() as session:
                await session.execute(text("ANALYZE contacts"))

    async def add_campaign(
        self, page_id: int, *, send_rate: float | None = None, ab: bool = False
    ) -> int:
        """The bench campaign: TEXT to everyone, or with `ab` an A/B split of TEXT and TEXT_B
        (same length, so the bytes sent match the ceiling's) without an experiment."""
        message: dict[str, Any] = (
            {
                "variants": [
                    {"key": "A", "content": {"text": TEXT}},
                    {"key": "B", "content": {"text": TEXT_B}},
                ]
            }
            if ab
            else {"content": Content(text=TEXT)}
        )
        async with self.db.transaction() as session:
            campaign = await campaigns.create(
                session,
                Actor.system(),
                CampaignCreate.model_validate(
                    {
                        "name": f"bench {page_id}",
                        "page_id": page_id,
                        "send_rate": min(send_rate, 300) if send_rate else None,
                        **message,
                    }
                ),
            )
            return campaign.id

    async def start(self, campaign_id: int) -> float:
        """Start through the same action the API calls; returns the wall-clock start time."""
        assert self.ctx is not None
        started = time.time()
        await actions.start(self.ctx, Actor.system(), campaign_id)
        return started

    async def campaign(self, campaign_id: int) -> Campaign:
        async with self.db.transaction() as session:
            found = await session.scalar(select(Campaign).where(Campaign.id == campaign_id))
            assert found is not None
            return found

    async def wait_attempted(self, campaign_ids: Sequence[int], timeout: float = 3600) -> None:
        """Wait until nothing is pending or in flight (ambiguous sends may still settle)."""
        deadline = time.monotonic() + timeout
        while True:
            rows = [await self.campaign(cid) for cid in campaign_ids]
            if all(r.n_pending == 0 and r.n_sending == 0 for r in rows):
                return
            if time.monotonic() > deadline:
                raise SystemExit(f"not attempted in {timeout:.0f} s: {[r.n_sent for r in rows]}")
            await asyncio.sleep(0.1)

    async def wait_done(self, campaign_ids: Sequence[int], timeout: float = 3600) -> float:
        """Wait until every campaign is completed; returns the latest completed_at (epoch)."""
        deadline = time.monotonic() + timeout
        while True:
            rows = [await self.campaign(cid) for cid in campaign_ids]
            if all(r.status is CampaignStatus.COMPLETED for r in rows):
                return max(r.completed_at.timestamp() for r in rows if r.completed_at)
            stuck = [r for r in rows if r.status not in (CampaignStatus.SENDING,)]
            stuck = [r for r in stuck if r.status is not CampaignStatus.COMPLETED]
            if stuck:
                raise SystemExit(
                    f"campaign {stuck[0].id} is {stuck[0].status}: {stuck[0].status_reason}"
                )
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"campaigns not done in {timeout:.0f} s: {[r.n_sent for r in rows]}"
                )
            await asyncio.sleep(0.1)

    async def close(self) -> None:
        self.stop_workers()
        for web in self.webs:
            web.stop()
        if self.ctx is not None:
            await self.ctx.close()
            self.ctx = None
        self.redis.stop()
        self.sim.stop()
        if os.environ.get("PAGECAST_BENCH_KEEP"):  # the processes' logs, for a post-mortem
            print(f"kept {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)


# ------------------------------------------------------------------ output


def print_table(
    title: str, facts: dict[str, Any], header: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    print(f"\n{title}")
    print(
        "machine: "
        + ", ".join(
            f"{k} {v}"
            for k, v in facts.items()
            if k in ("cores", "python", "redis", "postgresql", "loadavg_1m", "date")
        )
    )
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) for i, h in enumerate(header)]
    print(" | ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True)))
    print("-|-".join("-" * w for w in widths))
    for row in cells:
        print(" | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        return (
            f"{value:,.0f}"
            if abs(value) >= 100
            else f"{value:.3g}"
            if abs(value) < 1
            else f"{value:.2f}"
        )
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def write_results(name: str, payload: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    path = RESULTS_DIR / f"{name}-{stamp}.json"
    path.write_text(json.dumps(payload, indent=2, default=str))
    (RESULTS_DIR / f"{name}-latest.json").write_text(json.dumps(payload, indent=2, default=str))
    print(f"results: {path.relative_to(BENCH_DIR.parent)}")
    return path
