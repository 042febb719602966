"""API tokens: shown once at creation, stored as hashes, revocable."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from pagecast import security
from pagecast.errors import NotFound, Unauthorized
from pagecast.models import ApiToken, User, utcnow
from pagecast.permissions import Actor, Permission
from pagecast.services import audit

__all__ = ["LAST_USED_STEP", "authenticate", "create", "list_for", "revoke"]

# `last_used_at` moves at most this often: a client polling progress 100 times a second
# would otherwise write the same row 100 times a second.
LAST_USED_STEP = timedelta(minutes=1)


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


async def authenticate(session: AsyncSession, raw: str) -> User:
    token = await session.scalar(
        select(ApiToken)
        .options(joinedload(ApiToken.user))
        .where(ApiToken.token_hash == security.hash_token(raw))
    )
    if token is None:
        raise Unauthorized(
            "The API token is not valid. Create one with `pagecast tokens create --user EMAIL`."
        )
    if token.revoked_at is not None:
        raise Unauthorized(
            "The API token was revoked. Create a new one with `pagecast tokens create --user EMAIL`."
        )
    if not token.user.is_active:
        raise Unauthorized("The user of this API token is deactivated.")
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_STEP:
        token.last_used_at = now
    return token.user


async def list_for(session: AsyncSession, actor: Actor) -> list[ApiToken]:
    query = select(ApiToken).order_by(ApiToken.id)
    if not actor.can(Permission.USERS_MANAGE):
        query = query.where(ApiToken.user_id == actor.user_id)
    return list(await session.scalars(query))


async def revoke(session: AsyncSession, actor: Actor, token_id: int) -> ApiToken:
    token = await session.get(ApiToken, token_id)
    if token is None or (token.user_id != actor.user_id and not actor.can(Permission.USERS_MANAGE)):
        raise NotFound(f"API token {token_id} does not exist. List yours with GET /api/tokens.")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
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
