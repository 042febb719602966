"""`pagecast serve --demo`: Pagecast with a sandbox Page, without a Facebook app.

The Graph API simulator runs in the same process; its Page "Sandbox Bakery" has 500 people
who messaged it in the last day (a few blocked the Page, a few wrote more than 24 hours
ago). Pagecast's Graph URL points at the simulator and the simulator's webhooks (receipts,
echoes) come back to Pagecast, signed with a demo app secret. Demo data lives in its own
data directory, with its own SQLite database and embedded Redis: `DATABASE_URL` and
`REDIS_URL` are ignored, so a demo never writes into real data. The sandbox Page is connected
through "Connect with Facebook" (services/facebook_connect.py), as a real Page is: the
simulator's Login dialog consents as the demo user and the code is exchanged for its token.
"""

from __future__ import annotations

import csv
import io
import random
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import httpx
from pydantic import SecretStr
from sqlalchemy import select

from pagecast.models import Page, utcnow
from pagecast.permissions import Actor
from pagecast.private_files import private_dir, tighten, write_private
from pagecast.services import contact_import, facebook_connect
from pagecast.settings import DEMO_SECRET_FILE, Settings
from pagecast.simulator.server import SimulatorServer

if TYPE_CHECKING:
    from pagecast.context import AppContext

__all__ = ["DEMO_DATA_DIR", "Sandbox", "seed", "start"]

DEMO_DATA_DIR = Path("pagecast-demo")
PAGE_ID, PAGE_NAME = "100100", "Sandbox Bakery"
DEMO_USER_ID, DEMO_USER_TOKEN = "100200", "EAAUdemouser"  # who consents in the dialog
PEOPLE = 500
BLOCKED = 5  # the last 5 people blocked the Page: sends to them fail with 551
OUTSIDE = 12  # the 12 before them wrote 2 to 6 days ago: outside the 24-hour window
_FIRST = ("Ada", "Ben", "Chloé", "Dan", "Eve", "Femi", "Gia", "Hugo", "Ines", "Jon", "Kai", "Lea")
_LAST = ("Okafor", "Smith", "Nguyen", "García", "Rossi", "Kim", "Dubois", "Novak", "Silva")


@dataclass
class Sandbox:
    simulator: SimulatorServer
    token: str

    def stop(self) -> None:
        self.simulator.stop()


def start(settings: Settings, *, host: str, port: int) -> tuple[Settings, Sandbox]:
    """Start the simulator and return the demo's settings (own data dir, Graph URL, secrets)."""
    data_dir = settings.data_dir if "data_dir" in settings.model_fields_set else DEMO_DATA_DIR
    secret_file = private_dir(data_dir) / DEMO_SECRET_FILE
    if not secret_file.exists():
        write_private(secret_file, secrets.token_hex(16).encode())
    tighten(secret_file, 0o600)
    app_secret = secret_file.read_text().strip()
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    simulator = SimulatorServer(
        seed=7,
        webhook_url=f"http://{shown}:{port}/webhooks/messenger",
        app_secret=app_secret,
        verify_token="pagecast-demo",
    ).start()
    demo = settings.model_copy(
        update={
            "data_dir": data_dir,
            "database_url": None,
            "redis_url": None,
            "graph_api_url": simulator.url,
            "app_id": simulator.app.state.app.app_id,
            "facebook_web_url": simulator.url,
            "app_secret": SecretStr(app_secret),
            "webhook_verify_token": SecretStr("pagecast-demo"),
        }
    )
    demo.resolved_secret_key()
    return demo, Sandbox(simulator=simulator, token="EAAdemo" + PAGE_ID + "sandboxtoken")


def _people(now: datetime) -> list[dict[str, Any]]:
    rng = random.Random(7)  # the same people on every start
    people = []
    for i in range(PEOPLE):
        if i >= PEOPLE - BLOCKED - OUTSIDE and i < PEOPLE - BLOCKED:
            last = now - timedelta(days=rng.uniform(2, 6))
        else:
            last = now - timedelta(minutes=rng.uniform(1, 23 * 60))
        people.append(
            {
                "psid": str(7_000_000 + i),
                "first_name": rng.choice(_FIRST),
                "last_name": rng.choice(_LAST),
                "tags": ";".join(t for t in ("vip", "newsletter") if rng.random() < 0.3),
                "last_user_action": last.isoformat(timespec="seconds"),
            }
        )
    return people


async def _connect_with_facebook(ctx: AppContext, sandbox: Sandbox) -> None:
    """Connect the sandbox Page as a person would: the demo user consents in the simulator's
    Login dialog, and the code it gives back is exchanged and the Page connected."""
    facebook = ctx.facebook_login()
    settings = ctx.settings
    base = settings.public_url or f"http://{settings.host}:{settings.port}"
    redirect_uri = base.rstrip("/") + facebook_connect.CALLBACK_PATH
    async with httpx.AsyncClient(timeout=30) as browser:
        consent = await browser.post(
            sandbox.simulator.url + "/__sim/oauth",
            json={"user_token": DEMO_USER_TOKEN, "user_id": DEMO_USER_ID, "pages": [PAGE_ID]},
        )
        consent.raise_for_status()
        # No session to bind a state to here: nobody else can answer this dialog.
        dialog = await browser.get(facebook.dialog_url(redirect_uri, secrets.token_urlsafe(16)))
    code = dict(parse_qsl(urlsplit(dialog.headers.get("location", "")).query)).get("code")
    if dialog.status_code != 302 or not code:
        raise RuntimeError(f"The simulator's Login dialog answered {dialog.status_code}.")
    listing = await facebook_connect.sign_in_code(facebook, code, redirect_uri)
    async with ctx.db.transaction() as session:
        stored = await facebook_connect.connect_pages(
            session,
            Actor.system(),
            ctx.vault,
            listing,
            page_ids=[PAGE_ID],
            default_send_rate=settings.default_page_send_rate,
        )
    await facebook_connect.subscribe(facebook, stored)


async def seed(ctx: AppContext, sandbox: Sandbox) -> int:
    """Give the simulator its Page and people, and Pagecast the Page and its contacts.

    Runs on every start: the simulator forgets everything when the process ends, and the
    contacts' last messages move to "recently" again (the import keeps the later time).
    Returns the Pagecast id of the sandbox Page.
    """
    now = utcnow()
    people = _people(now)
    async with httpx.AsyncClient(base_url=sandbox.simulator.url, timeout=30) as sim:
        await sim.post(
            "/__sim/pages",
            json={"page_id": PAGE_ID, "name": PAGE_NAME, "access_token": sandbox.token},
        )
        await sim.post(
            "/__sim/users",
            json=[
                {k: v for k, v in p.items() if k != "tags"} | {"page_id": PAGE_ID} for p in people
            ],
        )
        for person in people[-BLOCKED:]:
            await sim.post(
                "/__sim/users/status",
                json={"page_id": PAGE_ID, "psid": person["psid"], "status": "blocked"},
            )
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["psid", "first_name", "last_name", "tags", "last_inbound_at"])
    for p in people:
        writer.writerow(
            [p["psid"], p["first_name"], p["last_name"], p["tags"], p["last_user_action"]]
        )
    async with ctx.db.transaction() as session:
        connected = await session.scalar(select(Page.id).where(Page.fb_page_id == PAGE_ID))
    if connected is None:
        await _connect_with_facebook(ctx, sandbox)
    async with ctx.db.transaction() as session:
        page = await session.scalar(select(Page).where(Page.fb_page_id == PAGE_ID))
        assert page is not None
        # A few hundred rows at start-up: read here, not as a background import.
        reader = contact_import.CsvReader(
            buffer.getvalue().encode(), max_tags=ctx.settings.import_max_tags_per_contact
        )
        try:
            batch = reader.next_batch(len(people) + 1)
        finally:
            reader.close()
        await contact_import.upsert(session, page.id, batch.rows)
        return page.id
