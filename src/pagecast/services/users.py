"""Users: creation, roles, password login."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast import security
from pagecast.errors import Conflict, InvalidState, NotFound, Unauthorized
from pagecast.models import Role, User, utcnow
from pagecast.permissions import Actor
from pagecast.schemas import UserCreate, UserUpdate
from pagecast.services import audit, tokens

__all__ = [
    "actor_for",
    "authenticate",
    "count",
    "create",
    "delete",
    "get",
    "get_by_email",
    "list_all",
    "update",
]


def actor_for(user: User) -> Actor:
    return Actor.user(user.id, user.email, user.role, can_send=user.can_send)


async def count(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count(User.id))) or 0)


async def get(session: AsyncSession, user_id: int) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound(f"User {user_id} does not exist. List users with GET /api/users.")
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
        password_hash=security.hash_password(data.password) if data.password else None,
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


async def update(session: AsyncSession, actor: Actor, user_id: int, data: UserUpdate) -> User:
    user = await get(session, user_id)
    changes = data.model_dump(exclude_unset=True)
    if user.id == actor.user_id and (
        changes.get("role", Role.ADMIN) != Role.ADMIN or changes.get("is_active") is False
    ):
        raise InvalidState(
            "You cannot demote or deactivate yourself; ask another admin.", field="role"
        )
    if "password" in changes:
        user.password_hash = security.hash_password(changes.pop("password"))
    for name, value in changes.items():
        setattr(user, name, value)
    tokens.CHANGES.note()
    await session.flush()
    shown = {k: (v.value if isinstance(v, Role) else v) for k, v in changes.items()}
    await audit.record(
        session, actor, "user.updated", object_type="user", object_id=user.id, details=shown
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


async def authenticate(session: AsyncSession, email: str, password: str) -> User:
    user = await session.scalar(select(User).where(User.email == email))
    if (
        user is None
        or not user.is_active
        or not security.verify_password(user.password_hash, password)
    ):
        raise Unauthorized("Wrong email or password.")
    user.last_login_at = utcnow()
    await session.flush()
    return user
