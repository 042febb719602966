"""API tokens: shown once at creation, stored as hashes, revocable."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast import security
from pagecast.errors import Hint, NotFound, Unauthorized
from pagecast.models import ApiToken, User, utcnow
from pagecast.permissions import Actor, Permission
from pagecast.services import audit

__all__ = [
    "CHANGES",
    "LAST_USED_STEP",
    "Changes",
    "authenticate",
    "create",
    "list_for",
    "revoke",
    "touch",
]

# `last_used_at` moves at most this often: a client polling progress 100 times a second
# would otherwise write the same row 100 times a second.
LAST_USED_STEP = timedelta(minutes=1)


class Changes:
    """Counts the changes in this process that can refuse a token (a revocation, a user's
    role, deactivation or deletion): a cache of authenticated tokens (web/deps.py) keeps an
    answer only while the count it was made at holds."""

    def __init__(self) -> None:
        self.count = 0

    def note(self) -> None:
        self.count += 1


CHANGES = Changes()


async def create(
    session: AsyncSession, actor: Actor, user: User, name: str
) -> tuple[ApiToken, str]:
    """Create a token for `user`; returns the row and the token itself (never stored)."""
    raw = security.new_api_token()
    token = ApiToken(
        user_id=user.id, name=name, token_hash=security.hash_token(raw), prefix=raw[:10]
    )
    session.add(token)
    await session.flush()
    await audit.record(
        session,
        actor,
        "token.created",
        object_type="user",
        object_id=user.id,
        details={"token_id": token.id, "name": name},
    )
    return token, raw


async def authenticate(session: AsyncSession, raw: str) -> tuple[Actor, int | None]:
    """The user behind an API token, as an actor, and the token's id when its `last_used_at`
    is due for a refresh (`touch`, which the caller runs after the answer: on SQLite a write
    waits for every other writer, and a progress poll must not).

    Reads only, one Core query of plain columns (no ORM objects): every API request runs it,
    a client polling progress a hundred times a second.
    """
    row = (
        await session.execute(
            select(
                ApiToken.id,
                ApiToken.revoked_at,
                ApiToken.last_used_at,
                User.id,
                User.email,
                User.role,
                User.can_send,
                User.can_approve,
                User.is_active,
            )
            .join(User, User.id == ApiToken.user_id)
            .where(ApiToken.token_hash == security.hash_token(raw))
        )
    ).one_or_none()
    if row is None:
        raise Unauthorized(
            "The API token is not valid. Create one with `pagecast tokens create --user EMAIL`."
        )
    (
        token_id,
        revoked_at,
        last_used_at,
        user_id,
        email,
        role,
        can_send,
        can_approve,
        is_active,
    ) = row
    if revoked_at is not None:
        raise Unauthorized(
            "The API token was revoked. Create a new one with `pagecast tokens create --user EMAIL`."
        )
    if not is_active:
        raise Unauthorized("The user of this API token is deactivated.")
    due = last_used_at is None or utcnow() - last_used_at >= LAST_USED_STEP
    actor = Actor.user(user_id, email, role, can_send=can_send, can_approve=can_approve)
    return actor, token_id if due else None


async def touch(session: AsyncSession, token_id: int) -> None:
    """Record that the token was used now (at most once every `LAST_USED_STEP`)."""
    now = utcnow()
    await session.execute(
        update(ApiToken)
        .where(
            ApiToken.id == token_id,
            or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at <= now - LAST_USED_STEP),
        )
        .values(last_used_at=now)
    )


async def list_for(session: AsyncSession, actor: Actor) -> list[ApiToken]:
    query = select(ApiToken).order_by(ApiToken.id)
    if not actor.can(Permission.USERS_MANAGE):
        query = query.where(ApiToken.user_id == actor.user_id)
    return list(await session.scalars(query))


async def revoke(session: AsyncSession, actor: Actor, token_id: int) -> ApiToken:
    token = await session.get(ApiToken, token_id)
    if token is None or (token.user_id != actor.user_id and not actor.can(Permission.USERS_MANAGE)):
        raise NotFound(
            f"API token {token_id} does not exist. List yours with {{hint}}.",
            hint=Hint(api="GET /api/tokens", cli="`pagecast tokens list`"),
        )
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        CHANGES.note()
        await audit.record(
            session,
            actor,
            "token.revoked",
            object_type="user",
            object_id=token.user_id,
            details={"token_id": token.id, "name": token.name},
        )
    await session.flush()
    return token
