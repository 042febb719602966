"""Facebook Pages: connect with a Page token (verified by the caller), edit, disconnect.

The token is encrypted at rest by the `Vault` and never leaves this module in clear except
through `credentials()`, which the Graph-calling edges use.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.errors import Conflict, Hint, InvalidInput, InvalidState, NotFound
from pagecast.models import Campaign, CampaignStatus, Page, PageStatus, Series, SeriesStatus
from pagecast.permissions import Actor
from pagecast.schemas import PageCreate, PageUpdate
from pagecast.security import Vault
from pagecast.services import audit, page_events, policy

__all__ = [
    "Owner",
    "Verifier",
    "connect",
    "credentials",
    "delete",
    "get",
    "list_all",
    "stopped_status",
    "store_token",
    "update",
]


@dataclass(frozen=True)
class Owner:
    """Who a token belongs to, as the Graph API's `GET /me` answers."""

    id: str
    name: str


# Asks Facebook who owns (access_token, app_secret); raises a PagecastError when it refuses.
Verifier = Callable[[str, str | None], Awaitable[Owner]]

_ACTIVE_CAMPAIGNS = (
    CampaignStatus.SENDING,
    CampaignStatus.PAUSED,
    CampaignStatus.SCHEDULED,
    CampaignStatus.AWAITING_APPROVAL,  # issue 22
)


async def get(session: AsyncSession, page_id: int) -> Page:
    page = await session.get(Page, page_id)
    if page is None:
        raise NotFound(
            f"Page {page_id} does not exist. List Pages with {{hint}}.",
            field="page_id",
            hint=Hint(api="GET /api/pages", cli="`pagecast pages list`"),
        )
    return page


async def list_all(session: AsyncSession) -> list[Page]:
    return list(await session.scalars(select(Page).order_by(Page.id)))


def stopped_status(token_revoked: bool) -> PageStatus:
    """The status of a Page that Facebook stopped: `token_invalid` when the error revoked its
    token (graph.errors.revokes_token: reconnect with a new token), else `restricted`."""
    return PageStatus.TOKEN_INVALID if token_revoked else PageStatus.RESTRICTED


def credentials(vault: Vault, page: Page) -> tuple[str, str | None]:
    """The Page's (access_token, app_secret) in clear, for a Graph call."""
    secret = vault.decrypt(page.app_secret_encrypted) if page.app_secret_encrypted else None
    return vault.decrypt(page.access_token_encrypted), secret


async def connect(
    session: AsyncSession,
    actor: Actor,
    vault: Vault,
    data: PageCreate,
    *,
    verify: Verifier,
    default_send_rate: float,
) -> Page:
    """Ask Facebook who owns the token, then store the Page with the token encrypted."""
    owner = await verify(data.access_token, data.app_secret)
    existing = await session.scalar(select(Page).where(Page.fb_page_id == owner.id))
    if existing is not None:
        raise Conflict(
            f"Page {owner.name} ({owner.id}) is already connected as Page {existing.id}. "
            f"To give it a new token, PATCH /api/pages/{existing.id} with access_token.",
            field="access_token",
        )
    page = Page(
        fb_page_id=owner.id,
        name=owner.name,
        access_token_encrypted=vault.encrypt(data.access_token),
        app_secret_encrypted=vault.encrypt(data.app_secret) if data.app_secret else None,
        send_rate=data.send_rate or default_send_rate,
        timezone=data.timezone,
        status=PageStatus.ACTIVE,
    )
    session.add(page)
    await session.flush()
    await audit.record(
        session,
        actor,
        "page.connected",
        object_type="page",
        object_id=page.id,
        details={"fb_page_id": owner.id, "name": owner.name},
    )
    return page


async def store_token(
    session: AsyncSession,
    actor: Actor,
    vault: Vault,
    *,
    fb_page_id: str,
    name: str,
    access_token: str,
    default_send_rate: float,
) -> tuple[Page, bool]:
    """A Page token that Facebook Login listed for the Page (services/facebook_connect): connect
    the Page, or give the Page already connected its new token. Returns (page, created).

    The token is the app's (`PAGECAST_APP_SECRET` proves it), so a Page's own app secret, from
    a token pasted for another app, is dropped. A new token does not lift Facebook's block.
    """
    page = await session.scalar(select(Page).where(Page.fb_page_id == fb_page_id))
    created = page is None
    if page is None:
        page = Page(
            fb_page_id=fb_page_id,
            name=name,
            access_token_encrypted=vault.encrypt(access_token),
            send_rate=default_send_rate,
            status=PageStatus.ACTIVE,
        )
        session.add(page)
    else:
        page.name = name
        page.access_token_encrypted = vault.encrypt(access_token)
        page.app_secret_encrypted = None
        await _reactivate(session, page)
    await session.flush()
    await audit.record(
        session,
        actor,
        "page.connected" if created else "page.token_replaced",
        object_type="page",
        object_id=page.id,
        details={"fb_page_id": fb_page_id, "name": name, "via": "facebook_login"}
        | ({} if created else {"replaced": ["access_token"]}),
    )
    return page, created


async def _reactivate(session: AsyncSession, page: Page) -> None:
    """A Page with a new token is active again, unless Facebook blocks it (services/policy.py)."""
    was = page.status
    if page.policy_block is None:
        page.status, page.status_reason = PageStatus.ACTIVE, None
    else:
        page.status = PageStatus.RESTRICTED
        page.status_reason = policy.block_reason(page.policy_block)
        await page_events.status_changed(session, page, was)


async def update(
    session: AsyncSession,
    actor: Actor,
    vault: Vault,
    page_id: int,
    data: PageUpdate,
    *,
    verify: Verifier,
) -> Page:
    page = await get(session, page_id)
    changes = data.model_dump(exclude_unset=True)
    token = changes.pop("access_token", None)
    secret = changes.pop("app_secret", None)
    if token is not None or secret is not None:
        current_token, current_secret = (
            credentials(vault, page) if page.access_token_encrypted else (None, None)
        )
        check_token = token or current_token
        if check_token is None:
            raise InvalidInput(
                f"Page {page.id} is disconnected; give a new access_token.", field="access_token"
            )
        owner = await verify(check_token, secret if secret is not None else current_secret)
        if owner.id != page.fb_page_id:
            raise InvalidInput(
                f"That token belongs to Page {owner.name} ({owner.id}), not to {page.name} "
                f"({page.fb_page_id}). Paste a token of {page.name}, or connect the other Page "
                "with POST /api/pages.",
                field="access_token",
            )
        page.access_token_encrypted = vault.encrypt(check_token)
        if secret is not None:
            page.app_secret_encrypted = vault.encrypt(secret)
        await _reactivate(session, page)
    before = {name: getattr(page, name) for name in changes}
    for name, value in changes.items():
        setattr(page, name, value)
    await session.flush()
    if token is not None or secret is not None:
        replaced = (["access_token"] if token is not None else []) + (
            ["app_secret"] if secret is not None else []
        )
        await audit.record(
            session,
            actor,
            "page.token_replaced",
            object_type="page",
            object_id=page.id,
            details={"name": page.name, "replaced": replaced, "status": page.status.value},
        )
    found = audit.changes(before, {name: getattr(page, name) for name in before})
    if found or (token is None and secret is None):
        await audit.record(
            session,
            actor,
            "page.updated",
            object_type="page",
            object_id=page.id,
            details={"name": page.name, "changes": found},
        )
    return page


async def delete(session: AsyncSession, actor: Actor, page_id: int) -> Page | None:
    """Forget the Page, or, when it has campaign history (or a series), disconnect it and
    erase its token. A Page with a series that has not ended is refused (as one with a
    campaign going on is).

    Returns the disconnected Page, or None when it was deleted.
    """
    page = await get(session, page_id)
    busy = await session.scalar(
        select(Campaign.id)
        .where(Campaign.page_id == page.id, Campaign.status.in_(_ACTIVE_CAMPAIGNS))
        .limit(1)
    )
    if busy is not None:
        raise InvalidState(
            f"Page {page.id} has campaign {busy} scheduled, awaiting approval, sending or paused; cancel it before "
            "disconnecting the Page.",
        )
    # Issue 20: a series that has not ended would go on making runs on a disconnected Page;
    # an ended one is history, like a campaign.
    going = await session.scalar(
        select(Series)
        .where(Series.page_id == page.id, Series.status != SeriesStatus.ENDED)
        .order_by(Series.id)
        .limit(1)
    )
    if going is not None:
        raise InvalidState(
            f"Page {page.id} has series {going.id} ({going.name!r}), {going.status.value}; end "
            "or delete the series ({hint}) before disconnecting the Page.",
            hint=Hint(
                api=f"POST /api/series/{going.id}/end", cli=f"`pagecast series end {going.id}`"
            ),
        )
    campaigns = await session.scalar(
        select(func.count(Campaign.id)).where(Campaign.page_id == page.id)
    )
    series = await session.scalar(select(func.count(Series.id)).where(Series.page_id == page.id))
    if campaigns or series:
        page.status, page.status_reason = PageStatus.DISCONNECTED, "Disconnected by " + actor.name
        page.access_token_encrypted, page.app_secret_encrypted = "", None
        await audit.record(
            session, actor, "page.disconnected", object_type="page", object_id=page.id
        )
        await session.flush()
        return page
    await session.delete(page)
    await audit.record(
        session,
        actor,
        "page.deleted",
        object_type="page",
        object_id=page_id,
        details={"fb_page_id": page.fb_page_id, "name": page.name},
    )
    await session.flush()
    return None
