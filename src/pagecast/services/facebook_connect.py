"""Connect with Facebook: the server half of Facebook Login, once for every surface.

The dashboard runs it in steps: `start` (a random `state` bound to the signed-in session),
`claim` (the callback's state, used once), `sign_in_code` (code → user token → long-lived
user token → permissions and Pages) and `keep` (the token, encrypted, on the run), then
`opened` + `choices` (the Pages to pick) and `opened` + `finish` (connect the ticked ones).
Scripts (API, CLI) have a user token: `sign_in`, then `connect_pages`; the demo, whose
simulator consents at once, a code: `sign_in_code`, then `connect_pages`. `finish` and
`connect_pages` only store: after the commit, `subscribe` subscribes the stored Pages to
their webhooks and answers the report. `forget_expired` erases abandoned runs' user tokens.

Facebook is reached through a `Facebook` the edge passes in (pagecast/facebook_login.py
wraps the Graph client); what it refuses arrives as a `PagecastError` that says what to do.
The `sign_in*` functions and `subscribe` only call Facebook: edges run them outside a
transaction, so that SQLite's one writer never waits on Facebook.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.db import rowcount
from pagecast.errors import InvalidInput, InvalidState
from pagecast.models import FacebookLogin, Page, utcnow
from pagecast.permissions import Actor
from pagecast.security import Vault
from pagecast.services import pages

__all__ = [
    "CALLBACK_PATH",
    "CHOOSE_TTL",
    "PERMISSIONS",
    "STATE_TTL",
    "Expired",
    "Facebook",
    "Grants",
    "ListedPage",
    "Listing",
    "Stored",
    "cancelled",
    "choices",
    "claim",
    "connect_pages",
    "finish",
    "forget_expired",
    "keep",
    "opened",
    "permission_report",
    "sign_in",
    "sign_in_code",
    "start",
    "subscribe",
]

CALLBACK_PATH = "/pages/connect/facebook/callback"  # the dashboard's, for the app's settings
STATE_TTL = timedelta(minutes=10)  # from the button to Facebook's answer
CHOOSE_TTL = timedelta(minutes=30)  # from Facebook's answer to the Pages picked

# What Pagecast asks for, and what each one stops when the person declines it.
PERMISSIONS = {
    "pages_messaging": (
        "Without pages_messaging nothing can be sent from the Page: every campaign and test "
        "send to it fails."
    ),
    "pages_manage_metadata": (
        "Without pages_manage_metadata Pagecast cannot subscribe to the Page's webhooks: no "
        "replies, opt-outs, delivery or read receipts arrive, and new people are not added."
    ),
    "pages_read_engagement": (
        "Without pages_read_engagement Pagecast cannot read the Page's conversations: the "
        "audience sync and people's names do not work."
    ),
    "pages_show_list": (
        "Without pages_show_list Facebook lists none of your Pages, so there is nothing to connect."
    ),
}
_AGAIN = 'Press "Connect with Facebook" again'
_NOT_OPEN = (
    "This Facebook connection is not open for you (it was finished or never started from "
    f"this sign-in). {_AGAIN}."
)


@dataclass(frozen=True)
class Grants:
    """What the person granted and declined to the app (`/me/permissions`)."""

    granted: tuple[str, ...] = ()
    declined: tuple[str, ...] = ()


@dataclass(frozen=True)
class ListedPage:
    """A Page the person manages, from `/me/accounts`, with its Page token (None when their
    role on the Page gives none)."""

    id: str
    name: str
    access_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Listing:
    """What Facebook answered for a person: their long-lived user token, the permissions
    granted, and their Pages."""

    token: str = field(repr=False)
    grants: Grants
    pages: tuple[ListedPage, ...] = ()


class Facebook(Protocol):
    """Facebook Login's calls, as the service needs them; refusals raise `PagecastError`s."""

    async def exchange_code(self, code: str, redirect_uri: str) -> str:
        """The dialog's code for a short-lived user token."""
        ...

    async def long_lived(self, user_token: str) -> str:
        """A long-lived user token for a user token."""
        ...

    async def grants(self, user_token: str) -> Grants: ...

    async def pages(self, user_token: str) -> list[ListedPage]: ...

    async def subscribe(self, page_token: str, fb_page_id: str) -> str | None:
        """Subscribe the app to the Page's webhook fields; None, or why it failed."""
        ...


class Expired(InvalidState):
    """The run's time to pick Pages is over (its user token is then erased)."""


@dataclass(frozen=True)
class Stored:
    """What `connect_pages` stored: each chosen Page's result, the permission report, and
    the Page tokens whose webhooks `subscribe` subscribes after the commit."""

    rows: tuple[dict[str, Any], ...]
    report: dict[str, Any]
    tokens: dict[str, str] = field(default_factory=dict, repr=False)  # fb_page_id -> token


def _digest(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


async def start(
    session: AsyncSession,
    *,
    session_id: int,
    user_id: int,
    redirect_uri: str,
    now: datetime | None = None,
) -> str:
    """A new `state` for the Login dialog, bound to this sign-in session for `STATE_TTL`.

    Forgets the runs that have expired, of anyone.
    """
    now = now or utcnow()
    await session.execute(delete(FacebookLogin).where(FacebookLogin.expires_at < now))
    state = secrets.token_urlsafe(32)
    session.add(
        FacebookLogin(
            state_hash=_digest(state),
            session_id=session_id,
            user_id=user_id,
            redirect_uri=redirect_uri,
            created_at=now,
            expires_at=now + STATE_TTL,
        )
    )
    await session.flush()
    return state


async def claim(
    session: AsyncSession, *, session_id: int, state: str | None, now: datetime | None = None
) -> FacebookLogin:
    """The run whose `state` Facebook sent back, used once: a state of another session, an
    unknown, reused or expired one is refused. Commit before calling Facebook, so that the
    state is spent whatever Facebook answers."""
    now = now or utcnow()
    if not state:
        raise InvalidInput(
            f"Facebook's answer has no state, so it cannot be matched to you. {_AGAIN}.",
            field="state",
        )
    login = await session.scalar(
        select(FacebookLogin).where(FacebookLogin.state_hash == _digest(state))
    )
    if login is None or not hmac.compare_digest(str(login.session_id), str(session_id)):
        raise InvalidInput(
            "This answer from Facebook was not started from this sign-in (its state is "
            f"unknown here). {_AGAIN}; do not open a Login link someone sent you.",
            field="state",
        )
    if login.called_back_at is not None:
        raise InvalidInput(
            f"This answer from Facebook was already used; each one works once. {_AGAIN}.",
            field="state",
        )
    if now >= login.expires_at:
        raise InvalidInput(
            f"This answer from Facebook came more than {int(STATE_TTL.total_seconds() // 60)} "
            f"minutes after you left Pagecast, so it has expired. {_AGAIN}.",
            field="state",
        )
    # Conditional, so that of two callbacks with one state (two tabs, a replay racing the
    # first) exactly one wins: on PostgreSQL the second waits for the first's row lock, then
    # finds the row called back. The run gets STATE_TTL again for Facebook's exchange.
    claimed = await session.execute(
        update(FacebookLogin)
        .where(FacebookLogin.id == login.id, FacebookLogin.called_back_at.is_(None))
        .values(called_back_at=now, expires_at=now + STATE_TTL)
        .execution_options(synchronize_session=False)
    )
    if rowcount(claimed) != 1:
        raise InvalidInput(
            f"This answer from Facebook was already used; each one works once. {_AGAIN}.",
            field="state",
        )
    await session.refresh(login)
    return login


def cancelled(reason: str | None) -> InvalidInput:
    """The refusal for a dialog that came back with `error` (the person cancelled)."""
    why = f" (Facebook said: {reason})" if reason else ""
    return InvalidInput(
        f"Facebook Login was cancelled{why}, so no Page was connected. {_AGAIN} and choose "
        "Continue; you can untick permissions there, and Pagecast will say what each one "
        "stops.",
        field="error",
    )


async def sign_in(facebook: Facebook, user_token: str) -> Listing:
    """What a user token gives: a long-lived token, the permissions granted, the person's
    Pages. Calls Facebook only: run it outside a transaction."""
    token = await facebook.long_lived(user_token)
    grants = await facebook.grants(token)
    return Listing(token=token, grants=grants, pages=tuple(await facebook.pages(token)))


async def sign_in_code(facebook: Facebook, code: str | None, redirect_uri: str) -> Listing:
    """`sign_in` for the dialog's code (and the `redirect_uri` the dialog was opened with)."""
    if not code:
        raise InvalidInput(f"Facebook's answer has no code. {_AGAIN}.", field="code")
    return await sign_in(facebook, await facebook.exchange_code(code, redirect_uri))


async def keep(
    session: AsyncSession,
    vault: Vault,
    login_id: int,
    listing: Listing,
    *,
    now: datetime | None = None,
) -> None:
    """Keep the long-lived token and the permissions on the run `claim` answered, encrypted,
    until the person has picked their Pages (`CHOOSE_TTL`)."""
    now = now or utcnow()
    login = await session.get(FacebookLogin, login_id)
    if login is None or login.called_back_at is None:
        raise InvalidState(f"This Facebook connection was not started here. {_AGAIN}.")
    login.user_token_encrypted = vault.encrypt(listing.token)
    login.permissions = {
        "granted": list(listing.grants.granted),
        "declined": list(listing.grants.declined),
    }
    login.expires_at = now + CHOOSE_TTL
    await session.flush()


async def _open(
    session: AsyncSession, login_id: int, session_id: int, now: datetime, *, lock: bool = False
) -> FacebookLogin:
    # `lock`: on PostgreSQL a second tab finishing the same run waits, then finds it finished.
    login = await session.get(FacebookLogin, login_id, with_for_update=lock or None)
    if login is None or login.session_id != session_id:
        raise InvalidState(_NOT_OPEN)
    if login.finished_at is not None:
        raise InvalidState(f"These Pages were connected already. {_AGAIN} to connect more.")
    if now >= login.expires_at:
        raise Expired(
            f"More than {int(CHOOSE_TTL.total_seconds() // 60)} minutes passed since Facebook "
            f"answered, so this connection has expired. {_AGAIN}."
        )
    if login.user_token_encrypted is None:
        raise InvalidState(_NOT_OPEN)
    return login


async def forget_expired(session: AsyncSession, now: datetime) -> int:
    """Erase the user token of every run past its time (an abandoned pick keeps no
    long-lived token at rest); how many were erased. The worker's sweep calls it, and the
    dashboard when it meets an expired run."""
    erased = await session.execute(
        update(FacebookLogin)
        .where(FacebookLogin.expires_at <= now, FacebookLogin.user_token_encrypted.is_not(None))
        .values(user_token_encrypted=None)
        .execution_options(synchronize_session=False)
    )
    return rowcount(erased)


def _grants(login: FacebookLogin) -> Grants:
    stored = login.permissions or {}
    return Grants(tuple(stored.get("granted", ())), tuple(stored.get("declined", ())))


async def opened(
    session: AsyncSession,
    vault: Vault,
    *,
    login_id: int,
    session_id: int,
    now: datetime | None = None,
) -> tuple[str, Grants]:
    """The user token and permissions of a run this session may still finish (reads only)."""
    login = await _open(session, login_id, session_id, now or utcnow())
    return vault.decrypt(login.user_token_encrypted or ""), _grants(login)


async def choices(
    session: AsyncSession, grants: Grants, listed: Sequence[ListedPage]
) -> dict[str, Any]:
    """The Pages the person may pick (each with the Pagecast Page already connected, if any)
    and the permission report (reads only)."""
    connected = await _connected(session, [p.id for p in listed])
    return {
        "pages": [
            {
                "fb_page_id": p.id,
                "name": p.name,
                "page_id": connected[p.id].id if p.id in connected else None,
                "has_token": p.access_token is not None,
            }
            for p in listed
        ],
        **permission_report(grants),
    }


async def finish(
    session: AsyncSession,
    actor: Actor,
    vault: Vault,
    *,
    login_id: int,
    session_id: int,
    listed: Sequence[ListedPage],
    page_ids: Sequence[str],
    default_send_rate: float,
    now: datetime | None = None,
) -> Stored:
    """Store the Pages the person ticked, of those `listed` for the run's token; the run is
    then over and its user token erased. Commit, then `subscribe`."""
    now = now or utcnow()
    login = await _open(session, login_id, session_id, now, lock=True)
    if not page_ids:
        raise InvalidInput("Tick at least one Page to connect.", field="page_ids")
    listing = Listing(token="", grants=_grants(login), pages=tuple(listed))
    stored = await connect_pages(
        session,
        actor,
        vault,
        listing,
        page_ids=page_ids,
        default_send_rate=default_send_rate,
    )
    login.finished_at, login.user_token_encrypted = now, None
    await session.flush()
    return stored


def permission_report(grants: Grants) -> dict[str, Any]:
    """Each permission Pagecast asks for: granted, declined or not granted, and what its
    absence stops."""
    rows = []
    for name, stops in PERMISSIONS.items():
        if name in grants.granted:
            rows.append({"permission": name, "status": "granted", "stops": None})
        else:
            status = "declined" if name in grants.declined else "not_granted"
            rows.append({"permission": name, "status": status, "stops": stops})
    return {
        "permissions": rows,
        "missing": [r["permission"] for r in rows if r["status"] != "granted"],
    }


async def _connected(session: AsyncSession, fb_page_ids: list[str]) -> dict[str, Page]:
    if not fb_page_ids:
        return {}
    rows = await session.scalars(select(Page).where(Page.fb_page_id.in_(fb_page_ids)))
    return {p.fb_page_id: p for p in rows}


async def connect_pages(
    session: AsyncSession,
    actor: Actor,
    vault: Vault,
    listing: Listing,
    *,
    page_ids: Sequence[str] | None,
    default_send_rate: float,
) -> Stored:
    """Store the token of each chosen Page of `listing` (None: every Page listed that is not
    connected yet; replacing a connected Page's token needs its id); a Page not listed is
    refused before anything is stored. Commit, then `subscribe` the Pages stored."""
    listed, grants = list(listing.pages), listing.grants
    by_id = {p.id: p for p in listed}
    report = permission_report(grants)
    if not listed:
        why = (
            PERMISSIONS["pages_show_list"]
            if "pages_show_list" in report["missing"]
            else "This Facebook account manages no Page that granted the app access."
        )
        raise InvalidInput(f"Facebook lists no Page for you. {why}", field="page_ids")
    if page_ids is None:
        chosen = await _new_pages(session, listed)
    else:
        chosen = list(dict.fromkeys(page_ids))
    if not chosen:
        raise InvalidInput("Give at least one Page id to connect.", field="page_ids")
    unknown = [p for p in chosen if p not in by_id]
    if unknown:
        known = ", ".join(f"{p.name} ({p.id})" for p in listed)
        raise InvalidInput(
            f"Page {unknown[0]} is not one you manage that granted this app access; yours are: "
            f"{known}. Choose among them, or have an admin of that Page connect it.",
            field="page_ids",
        )
    results: list[dict[str, Any]] = []
    tokens: dict[str, str] = {}
    for fb_page_id in chosen:
        listed_page = by_id[fb_page_id]
        if listed_page.access_token is None:
            results.append(
                {
                    "page_id": None,
                    "fb_page_id": fb_page_id,
                    "name": listed_page.name,
                    "result": "not_connected",
                    "subscribed": False,
                    "problem": "Facebook gave no Page token for it: your role on the Page does "
                    "not allow the app to act for it. Ask an admin of the Page to connect it.",
                }
            )
            continue
        page, created = await pages.store_token(
            session,
            actor,
            vault,
            fb_page_id=fb_page_id,
            name=listed_page.name,
            access_token=listed_page.access_token,
            default_send_rate=default_send_rate,
        )
        tokens[fb_page_id] = listed_page.access_token
        results.append(
            {
                "page_id": page.id,
                "fb_page_id": fb_page_id,
                "name": listed_page.name,
                "result": "connected" if created else "token_replaced",
                "subscribed": False,
                "problem": None,
            }
        )
    return Stored(tuple(results), report, tokens)


async def _new_pages(session: AsyncSession, listed: Sequence[ListedPage]) -> list[str]:
    """The listed Pages not connected yet; none left is refused (replacing a token, maybe a
    system user's, is only done when asked by id)."""
    connected = await _connected(session, [p.id for p in listed])
    new = [p.id for p in listed if p.id not in connected]
    if not new:
        names = ", ".join(f"{p.name} ({p.id})" for p in listed)
        raise InvalidInput(
            f"Every Page Facebook lists for you is connected already: {names}. To replace a "
            "Page's token with this one, name the Page (page_ids; --page in the CLI).",
            field="page_ids",
        )
    return new


async def subscribe(facebook: Facebook, stored: Stored) -> dict[str, Any]:
    """Subscribe the app to the webhooks of each Page `stored`, after the commit (calls
    Facebook only: run it outside a transaction). The answer: each Page's result, and the
    permission report."""
    rows = []
    for row in stored.rows:
        token = stored.tokens.get(row["fb_page_id"])
        if token is None:
            rows.append(row)
            continue
        problem = await facebook.subscribe(token, row["fb_page_id"])
        if problem is not None and "pages_manage_metadata" in stored.report["missing"]:
            problem = f"{problem} {PERMISSIONS['pages_manage_metadata']}"
        rows.append(row | {"subscribed": problem is None, "problem": problem})
    return {"pages": rows, **stored.report}
