"""Users: creation, roles, password login.

Passwords are hashed and checked by `security.PASSWORDS`, off the event loop. A password
change ends the user's login sessions (all of them, or all but the one making the change:
`keep_session`).
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast import security
from pagecast.db import Database
from pagecast.errors import Conflict, Hint, InvalidState, NotFound, Unauthorized
from pagecast.models import Role, User
from pagecast.permissions import Actor
from pagecast.schemas import UserCreate, UserUpdate
from pagecast.services import audit, sessions, tokens

__all__ = [
    "actor_for",
    "authenticate",
    "count",
    "create",
    "delete",
    "get",
    "get_by_email",
    "list_all",
    "set_timezone",
    "update",
]


def actor_for(user: User) -> Actor:
    return Actor.user(
        user.id, user.email, user.role, can_send=user.can_send, can_approve=user.can_approve
    )


async def count(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count(User.id))) or 0)


async def get(session: AsyncSession, user_id: int) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound(
            f"User {user_id} does not exist. List users with {{hint}}.",
            hint=Hint(api="GET /api/users", cli="`pagecast users list`"),
        )
    return user


async def get_by_email(session: AsyncSession, email: str) -> User:
    user = await session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise NotFound(
            f"No user has the email {email!r}. Create one with `pagecast users create`.",
            field="email",
        )
    return user


async def list_all(session: AsyncSession) -> list[User]:
    return list(await session.scalars(select(User).order_by(User.id)))


async def create(session: AsyncSession, actor: Actor, data: UserCreate) -> User:
    if await session.scalar(select(User.id).where(User.email == data.email)) is not None:
        raise Conflict(f"A user with the email {data.email} already exists.", field="email")
    user = User(
        email=data.email,
        role=data.role,
        can_send=data.can_send,
        can_approve=data.can_approve,
        password_hash=await security.PASSWORDS.hash(data.password) if data.password else None,
    )
    session.add(user)
    await session.flush()
    await audit.record(
        session,
        actor,
        "user.created",
        object_type="user",
        object_id=user.id,
        details={"email": user.email, "role": user.role.value},
    )
    return user


async def update(
    session: AsyncSession,
    actor: Actor,
    user_id: int,
    data: UserUpdate,
    *,
    keep_session: int | None = None,
) -> User:
    """Change a user; a new password ends the user's sessions except `keep_session` (the
    session of someone changing their own password)."""
    user = await get(session, user_id)
    changes = data.model_dump(exclude_unset=True)
    if user.id == actor.user_id and (
        changes.get("role", Role.ADMIN) != Role.ADMIN or changes.get("is_active") is False
    ):
        raise InvalidState(
            "You cannot demote or deactivate yourself; ask another admin.", field="role"
        )
    if "password" in changes:
        user.password_hash = await security.PASSWORDS.hash(changes.pop("password"))
        keep = keep_session if user.id == actor.user_id else None
        await sessions.end_all(session, actor, user.id, keep=keep, reason="password changed")
    for name, value in changes.items():
        setattr(user, name, value)
    tokens.CHANGES.note()
    await session.flush()
    shown = {k: (v.value if isinstance(v, Role) else v) for k, v in changes.items()}
    await audit.record(
        session, actor, "user.updated", object_type="user", object_id=user.id, details=shown
    )
    return user


async def set_timezone(session: AsyncSession, actor: Actor, user_id: int, timezone: str) -> User:
    """Set the zone the user's dashboard shows times in (`timezone`: a name already checked
    by `schemas.TimeZoneName`). Anyone may set their own; the CLI sets anyone's."""
    user = await get(session, user_id)
    before, user.timezone = user.timezone, timezone
    await session.flush()
    if before != timezone:
        await audit.record(
            session,
            actor,
            "user.updated",
            object_type="user",
            object_id=user.id,
            details={"timezone": timezone},
        )
    return user


async def delete(session: AsyncSession, actor: Actor, user_id: int) -> None:
    user = await get(session, user_id)
    if user.id == actor.user_id:
        raise InvalidState("You cannot delete yourself; ask another admin.")
    await session.delete(user)
    tokens.CHANGES.note()
    await audit.record(
        session,
        actor,
        "user.deleted",
        object_type="user",
        object_id=user_id,
        details={"email": user.email},
    )
    await session.flush()


async def authenticate(db: Database, email: str, password: str) -> User:
    """The active user with this email and password, else Unauthorized.

    The lookup is a read and the argon2 check runs off the event loop, outside any write
    transaction (on SQLite a write would hold the lock for the check's duration). An unknown
    email, a user without a password and a deactivated user get a real check all the same
    (against a dummy hash), so the answer's timing does not tell them apart.
    """
    async with db.reading() as session:
        user = await session.scalar(select(User).where(User.email == email.strip().lower()))
    good = await security.PASSWORDS.verify(user.password_hash if user else None, password)
    if user is None or not user.is_active or not good:
        raise Unauthorized("Wrong email or password.")
    return user
