"""`pagecast db | users | tokens | config`: administration."""

from __future__ import annotations

import sys
from typing import Any

import typer

from pagecast.cli.base import (
    cli_actor,
    config_app,
    db_app,
    fail,
    id_argument,
    load_settings,
    masked,
    run,
    tokens_app,
    users_app,
    validation_line,
)

# ------------------------------------------------------------------ db


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Apply migrations (idempotent; safe on every deploy)."""
    from pagecast.db import upgrade

    run(lambda ctx: upgrade(ctx.db, revision), migrate=False)
    typer.echo(f"Database at {masked(_run_url())} is at {revision}.")


@db_app.command("downgrade")
def db_downgrade(revision: str = typer.Argument(..., help="Target revision, or `base`.")) -> None:
    """Undo migrations down to REVISION."""
    from pagecast.db import downgrade

    run(lambda ctx: downgrade(ctx.db, revision), migrate=False)
    typer.echo(f"Database downgraded to {revision}.")


def _run_url() -> str:
    return load_settings().resolved_database_url()


# ------------------------------------------------------------------ users and tokens


@users_app.command("create")
def users_create(
    email: str = typer.Option(..., help="Login email."),
    role: str = typer.Option(..., help="admin, manager or viewer."),
    password: str | None = typer.Option(None, help="Password (at least 8 characters)."),
    no_send: bool = typer.Option(False, "--no-send", help="May edit campaigns but not start them."),
) -> None:
    """Create a user."""
    from pydantic import ValidationError

    from pagecast.schemas import UserCreate
    from pagecast.services import users

    try:
        # Validated from the typed strings, so a bad --role gets the same one-line error as
        # a bad --email (a typer enum option would exit 2 with its own usage text).
        data = UserCreate.model_validate(
            {"email": email, "role": role, "password": password, "can_send": not no_send}
        )
    except ValidationError as exc:
        fail(validation_line(exc))

    async def create(ctx: Any) -> Any:
        async with ctx.db.transaction() as session:
            return await users.create(session, cli_actor(), data)

    user = run(create)
    typer.echo(f"Created {user.role.value} {user.email} (user {user.id}).")


@users_app.command("list")
def users_list() -> None:
    """List users."""
    from pagecast.services import users

    async def fetch(ctx: Any) -> Any:
        async with ctx.db.transaction() as session:
            return await users.list_all(session)

    for user in run(fetch):
        typer.echo(
            f"{user.id}\t{user.email}\t{user.role.value}\t"
            f"{'active' if user.is_active else 'inactive'}\t{user.timezone}"
        )


@users_app.command("sessions")
def users_sessions(email: str = typer.Argument(..., help="The user's email.")) -> None:
    """List a user's live login sessions."""
    from pagecast.services import sessions, users

    async def fetch(ctx: Any) -> Any:
        async with ctx.db.transaction() as session:
            owner = await users.get_by_email(session, email)
            return await sessions.list_active(session, owner.id)

    for row in run(fetch):
        typer.echo(
            f"{row.id}\tstarted {row.created_at:%Y-%m-%d %H:%M}\t"
            f"seen {row.last_seen_at:%Y-%m-%d %H:%M}\t{row.address or '-'}\t{row.user_agent or '-'}"
        )


@users_app.command("sign-out")
def users_sign_out(email: str = typer.Argument(..., help="The user's email.")) -> None:
    """Sign a user out everywhere: every login session ends (API tokens stay)."""
    from pagecast.services import sessions, users

    async def sign_out(ctx: Any) -> int:
        async with ctx.db.transaction() as session:
            owner = await users.get_by_email(session, email)
            return await sessions.end_all(
                session, cli_actor(), owner.id, reason="signed out by an admin"
            )

    ended = run(sign_out)
    typer.echo(f"Signed {email} out everywhere ({ended} session{'s' if ended != 1 else ''} ended).")


@users_app.command("timezone")
def users_timezone(
    email: str = typer.Argument(..., help="The user's email."),
    zone: str = typer.Argument(..., help='An IANA time zone name, e.g. "Asia/Manila" or "UTC".'),
) -> None:
    """Set the time zone a user's dashboard shows times in (and reads schedules in)."""
    from pydantic import ValidationError

    from pagecast.schemas import MeUpdate
    from pagecast.services import users

    try:
        data = MeUpdate.model_validate({"timezone": zone})
    except ValidationError as exc:
        fail(validation_line(exc))
    chosen = data.timezone
    assert chosen is not None

    async def set_zone(ctx: Any) -> Any:
        async with ctx.db.transaction() as session:
            owner = await users.get_by_email(session, email)
            return await users.set_timezone(session, cli_actor(), owner.id, chosen)

    user = run(set_zone)
    typer.echo(f"{user.email} now sees times in {user.timezone}.")


@tokens_app.command("create")
def tokens_create(
    user: str = typer.Option(..., "--user", help="Email of the token's user."),
    name: str = typer.Option("cli", help="A name to recognise the token by."),
) -> None:
    """Create an API token; it is printed once, as the last line."""
    from pagecast.services import tokens, users

    async def create(ctx: Any) -> Any:
        async with ctx.db.transaction() as session:
            owner = await users.get_by_email(session, user)
            return await tokens.create(session, cli_actor(), owner, name)

    row, raw = run(create)
    typer.echo(f"Token {row.id} for {user} (shown once; store it now):")
    typer.echo(raw)


@tokens_app.command("revoke")
def tokens_revoke(token_id: int = id_argument()) -> None:
    """Revoke an API token."""
    from pagecast.services import tokens

    async def revoke(ctx: Any) -> Any:
        async with ctx.db.transaction() as session:
            return await tokens.revoke(session, cli_actor(), token_id)

    run(revoke)
    typer.echo(f"Token {token_id} revoked.")


# ------------------------------------------------------------------ config


@config_app.command("docs")
def config_docs() -> None:
    """Print docs/settings.md, generated from the settings."""
    from pagecast.settings import render_settings_doc

    sys.stdout.write(render_settings_doc())
