"""Layering rules (docs/design.md, "Layering"): what each layer may import, and nothing connects at import."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).parent.parent / "src" / "pagecast"
FORBIDDEN_IN_SERVICES = (
    "aiohttp",
    "httpx",
    "redis",
    "bullmq",
    "fastapi",
    "starlette",
    "typer",
    "click",
    "pagecast.graph",
    "pagecast.queue",
    "pagecast.web",
    "pagecast.cli",
    "pagecast.settings",
)


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted((SRC / "services").glob("*.py")), ids=lambda p: p.name)
def test_services_do_not_import_edges_or_clients(path: Path) -> None:
    bad = sorted(n for n in _imports(path) if n.startswith(FORBIDDEN_IN_SERVICES))
    assert bad == []


def test_only_settings_reads_the_environment() -> None:
    # settings.py reads it through pydantic-settings; nothing else may read it at all.
    readers = [
        str(p.relative_to(SRC))
        for p in SRC.rglob("*.py")
        if p.name != "settings.py"
        and ("os.environ" in p.read_text() or "os.getenv" in p.read_text())
    ]
    assert readers == []


def test_package_init_does_not_import_the_web_app() -> None:
    assert _imports(SRC / "__init__.py") == {"sys"}


def test_a_worker_process_loads_neither_the_web_stack_nor_httpx() -> None:
    # What `pagecast worker` imports before it runs, in its order: the CLI (the console
    # script's entry point), then the worker and its context.
    # The web stack, httpx (the Graph client is on aiohttp) and httpx's own command line
    # (rich, pygments) would be memory it never uses (docs/performance.md, P6). The `None`
    # that pagecast/__init__.py puts at `httpx._main` is not httpx loaded.
    code = (
        "import sys\n"
        "import pagecast.cli, pagecast.cli.processes, pagecast.context, pagecast.worker\n"
        "unused = {'fastapi', 'starlette', 'uvicorn', 'jinja2', 'rich', 'pygments', 'httpx'}\n"
        "loaded = {name.partition('.')[0] for name, m in sys.modules.items() if m is not None}\n"
        "print(sorted(unused & loaded))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_importing_and_building_the_app_opens_no_connection() -> None:
    # Point every backend at closed ports: creating the app must not try any of them.
    code = (
        "import socket\n"
        "calls = []\n"
        "real = socket.socket.connect\n"
        "def spy(self, address):\n"
        "    calls.append(address)\n"
        "    return real(self, address)\n"
        "socket.socket.connect = spy\n"
        "from pagecast.settings import Settings\n"
        "from pagecast.web.app import create_app\n"
        "import pagecast.cli, pagecast.graph, pagecast.services.campaigns\n"
        "create_app(Settings(_env_file=None, database_url='postgresql://u@127.0.0.1:1/x', "
        "redis_url='redis://127.0.0.1:1', graph_api_url='http://127.0.0.1:1'))\n"
        "print(calls)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_no_test_module_imports_a_conftest() -> None:
    # tests/, tests/dashboard/, tests/simulator/, ... each have a conftest.py, all imported as
    # `conftest`: in a whole-suite run `from conftest import X` finds whichever came last and
    # fails collection. Fixtures come to a test by name; constants are defined where used.
    tests = Path(__file__).parent
    importing = [
        str(p.relative_to(tests))
        for p in tests.rglob("*.py")
        if p.name != "conftest.py" and "node_modules" not in p.parts and "conftest" in _imports(p)
    ]
    assert importing == []
