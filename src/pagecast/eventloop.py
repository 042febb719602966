"""The event loop Pagecast's processes run on (`PAGECAST_EVENT_LOOP`).

`auto` (the default) takes uvloop where it is installed (it comes with `uvicorn[standard]`
on Linux and macOS) and asyncio's own loop elsewhere. On a machine whose cores are all
busy, the web process on uvloop answered progress reads in about half the time (P7 in
docs/performance.md); a worker's CPU per message did not change measurably. `asyncio` is
the way back if a platform's uvloop misbehaves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

from pagecast.errors import ConfigError

__all__ = ["EventLoop", "loop_factory", "run"]

T = TypeVar("T")
EventLoop = Literal["auto", "asyncio", "uvloop"]


def loop_factory(choice: EventLoop) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The factory of the loop `choice` names; None means asyncio's default loop.

    Raises:
        ConfigError: `uvloop` was asked for and is not installed.
    """
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise ConfigError(
                "PAGECAST_EVENT_LOOP=uvloop, but uvloop is not installed: install it "
                "(`uv pip install uvloop`) or set PAGECAST_EVENT_LOOP=auto."
            ) from None
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], choice: EventLoop = "auto") -> T:
    """`asyncio.run(main)` on the loop `choice` names."""
    with asyncio.Runner(loop_factory=loop_factory(choice)) as runner:
        return runner.run(main)
