"""A faithful local Messenger Graph API: Send API, batch, conversations, profiles, webhooks
with real signatures, rate limits, fault injection and a controllable clock.

`create_app(...)` builds the ASGI app for in-process tests; `pagecast simulator` (see
`server.run`) and `server.SimulatorServer` serve it over a real socket. The `/__sim/`
control plane is described in `docs/simulator.md`.
"""

from __future__ import annotations

from pagecast.simulator.app import ConnectionDropped, SimulatorApp
from pagecast.simulator.clock import Clock, ManualClock
from pagecast.simulator.state import Knobs, SimState
from pagecast.simulator.webhooks import check_loopback, serialize, sign

__all__ = [
    "Clock",
    "ConnectionDropped",
    "Knobs",
    "ManualClock",
    "SimState",
    "SimulatorApp",
    "create_app",
    "serialize",
    "sign",
]


def create_app(
    *,
    seed: int = 0,
    latency_ms: tuple[float, float] = (0, 0),
    webhook_url: str | None = None,
    app_secret: str | None = None,
    verify_token: str | None = None,
    clock: Clock | None = None,
) -> SimulatorApp:
    """A fresh simulator: its state is `app.state`, its webhook emitter `app.emitter`."""
    if webhook_url is not None:
        check_loopback(webhook_url)
    return SimulatorApp(
        seed=seed,
        latency_ms=(float(latency_ms[0]), float(latency_ms[1])),
        clock=clock or Clock(),
        app_secret=app_secret,
        webhook_url=webhook_url,
        verify_token=verify_token,
    )
