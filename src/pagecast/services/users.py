"""Users: creation, roles, password login.

Passwords are hashed and checked by `security.PASSWORDS`, off the event loop. A password
change ends the user's login sessions (all of them, or all but the one making the change:
`keep_session`).
"""

from __future__ import annotations

from typing import Any

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
    "check_password",
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
    password = "password" in changes
    if password:
        user.password_hash = await security.PASSWORDS.hash(changes.pop("password"))
        keep = keep_session if user.id == actor.user_id else None
        await sessions.end_all(session, actor, user.id, keep=keep, reason="password changed")
    before = {name: getattr(user, name) for name in changes}
    for name, value in changes.items():
        setattr(user, name, value)
    tokens.CHANGES.note()
    await session.flush()
    await _audit_update(session, actor, user, before, password=password)
    return user


async def _audit_update(
    session: AsyncSession, actor: Actor, user: User, before: dict[str, Any], *, password: bool
) -> None:
    """One entry per kind of change, so each can be found by its action: `user.password_changed`
    (by the user) or `user.password_reset` (by an admin), `user.role_changed`,
    `user.deactivated` or `user.reactivated`, and `user.updated` for the rest."""
    found = audit.changes(before, {name: getattr(user, name) for name in before})
    entries: list[tuple[str, dict[str, Any]]] = []
    if password:
        own = user.id == actor.user_id
        entries.append(
            ("user.password_changed" if own else "user.password_reset", {"password": "changed"})
        )
    if "role" in found:
        entries.append(("user.role_changed", {"changes": {"role": found.pop("role")}}))
    if "is_active" in found:
        active = found.pop("is_active")
        action = "user.reactivated" if active["to"] else "user.deactivated"
        entries.append((action, {"changes": {"is_active": active}}))
    if found:
        entries.append(("user.updated", {"changes": found}))
    for action, details in entries:
        await audit.record(
            session,
            actor,
            action,
            object_type="user",
            object_id=user.id,
            details={"email": user.email} | details,
        )


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
            details={
                "email": user.email,
                "changes": audit.changes({"timezone": before}, {"timezone": timezone}),
            },
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


async def check_password(db: Database, email: str, password: str) -> tuple[User | None, str | None]:
    """The user with this email, and None when the password is right and the user active,
    else why not in words (for the audit log: "unknown email", "wrong password", "no
    password set", "user deactivated"); never the password.

    The lookup is a read and the argon2 check runs off the event loop, outside any write
    transaction (on SQLite a write would hold the lock for the check's duration). An unknown
    email, a user without a password and a deactivated user get a real check all the same
    (against a dummy hash), so the answer's timing does not tell them apart.
    """
    async with db.reading() as session:
        user = await session.scalar(select(User).where(User.email == email.strip().lower()))
    good = await security.PASSWORDS.verify(user.password_hash if user else None, password)
    if user is None:
        return None, "unknown email"
    if not user.is_active:
        return user, "user deactivated"
    if not good:
        return user, "wrong password" if user.password_hash else "no password set"
    return user, None


async def authenticate(db: Database, email: str, password: str) -> User:
    """The active user with this email and password, else Unauthorized (`check_password`)."""
    user, refused = await check_password(db, email, password)
    if user is None or refused is not None:
        raise Unauthorized("Wrong email or password.")
    return user
