"""Roles, permissions and the `Actor` that every service call acts for."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from pagecast.errors import Forbidden
from pagecast.models import Role

__all__ = ["Actor", "Permission", "permissions_for"]


class Permission(enum.StrEnum):
    CAMPAIGNS_READ = "campaigns:read"
    CAMPAIGNS_WRITE = "campaigns:write"
    # Sending is its own permission: a manager without it can edit but not start.
    CAMPAIGNS_SEND = "campaigns:send"
    # Issue 22: approving or rejecting another person's campaign (services/approvals.py).
    CAMPAIGNS_APPROVE = "campaigns:approve"
    CONTACTS_READ = "contacts:read"
    CONTACTS_WRITE = "contacts:write"
    PAGES_READ = "pages:read"
    PAGES_WRITE = "pages:write"
    TEMPLATES_READ = "templates:read"
    TEMPLATES_WRITE = "templates:write"
    USERS_MANAGE = "users:manage"
    ADMIN = "admin"


_READ = frozenset(
    {
        Permission.CAMPAIGNS_READ,
        Permission.CONTACTS_READ,
        Permission.PAGES_READ,
        Permission.TEMPLATES_READ,
    }
)
_MANAGE = _READ | {
    Permission.CAMPAIGNS_WRITE,
    Permission.CAMPAIGNS_SEND,
    Permission.CAMPAIGNS_APPROVE,
    Permission.CONTACTS_WRITE,
    Permission.TEMPLATES_WRITE,
}
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: _READ,
    Role.MANAGER: frozenset(_MANAGE),
    Role.ADMIN: frozenset(set(Permission)),
}


def permissions_for(
    role: Role, *, can_send: bool = True, can_approve: bool = True
) -> frozenset[Permission]:
    """The role's permissions, less the send and approve permissions an admin withdrew."""
    withdrawn = {Permission.CAMPAIGNS_SEND} if not can_send else set()
    withdrawn |= {Permission.CAMPAIGNS_APPROVE} if not can_approve else set()
    return ROLE_PERMISSIONS[role] - withdrawn


@dataclass(frozen=True)
class Actor:
    """Who is acting: a user (through a session or an API token), or the system."""

    user_id: int | None
    name: str
    role: Role
    permissions: frozenset[Permission]

    @classmethod
    def user(
        cls, user_id: int, email: str, role: Role, *, can_send: bool, can_approve: bool = True
    ) -> Actor:
        """A user acting through a session or an API token."""
        return cls(
            user_id=user_id,
            name=email,
            role=role,
            permissions=permissions_for(role, can_send=can_send, can_approve=can_approve),
        )

    @classmethod
    def system(cls) -> Actor:
        return cls(
            user_id=None, name="system", role=Role.ADMIN, permissions=ROLE_PERMISSIONS[Role.ADMIN]
        )

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions

    def require(self, permission: Permission) -> None:
        if permission not in self.permissions:
            raise Forbidden(
                f"Your role ({self.role.value}) does not allow {permission.value}. "
                "Ask an admin for a role that does."
            )
