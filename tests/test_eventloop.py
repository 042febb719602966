"""Which event loop Pagecast's processes run on (`PAGECAST_EVENT_LOOP`)."""

from __future__ import annotations

import asyncio
import sys

import pytest
import uvloop

from pagecast import eventloop
from pagecast.errors import ConfigError


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_auto_runs_on_uvloop_where_it_is_installed() -> None:
    assert eventloop.loop_factory("auto") is uvloop.new_event_loop
    assert eventloop.run(_loop_module(), "auto").startswith("uvloop")


def test_asyncio_runs_on_asyncios_own_loop() -> None:
    assert eventloop.loop_factory("asyncio") is None
    assert eventloop.run(_loop_module(), "asyncio").startswith("asyncio")


def test_without_uvloop_auto_falls_back_and_uvloop_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # what `import uvloop` sees without it
    assert eventloop.loop_factory("auto") is None
    with pytest.raises(ConfigError, match=r"PAGECAST_EVENT_LOOP=uvloop.*not installed"):
        eventloop.loop_factory("uvloop")
