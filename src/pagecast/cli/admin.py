"""`pagecast db | users | tokens | config`: administration."""

from __future__ import annotations

import sys
from typing import Any

import typer

from pagecast.cli.base import (
    app,
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
from pagecast.cli.output import json_option, print_json, print_table

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
    no_approve: bool = typer.Option(
        False, "--no-approve", help="May not approve others' campaigns (campaigns:approve)."
    ),
) -> None:
    """Create a user."""
    from pydantic import ValidationError

    from pagecast.schemas import UserCreate
    from pagecast.services import users

    try:
        # Validated from the typed strings, so a bad --role gets the same one-line error as
        # a bad --email (a typer enum option would exit 2 with its own usage text).
        data = UserCreate.model_validate(
            {
                "email": email,
                "role": role,
                "password": password,
                "can_send": not no_send,
                "can_approve": not no_approve,
            }
        )
    except ValidationError as exc:
        fail(validation_line(exc))

    async def create(ctx: Any) -> Any:
        async with ctx.db.transaction() as session:
            return await users.create(session, cli_actor(), data)

    user = run(create)
    typer.echo(f"Created {user.role.value} {user.email} (user {user.id}).")


@users_app.command("list")
def users_list(as_json: bool = json_option()) -> None:
    """List users."""
    from pagecast.services import users
    from pagecast.web import render

    async def fetch(ctx: Any) -> Any:
        async with ctx.db.transaction() as session:
            return [render.user(u) for u in await users.list_all(session)]

    print_table(
        run(fetch),
        [
            ("ID", lambda u: u["id"]),
            ("EMAIL", lambda u: u["email"]),
            ("ROLE", lambda u: u["role"]),
            ("STATE", lambda u: "active" if u["is_active"] else "inactive"),
            ("SEND", lambda u: "yes" if u["can_send"] else "no"),
            ("APPROVE", lambda u: "yes" if u["can_approve"] else "no"),
            ("TIME ZONE", lambda u: u["timezone"]),
        ],
        empty="No users. Create one with `pagecast users create`.",
        as_json=as_json,
    )


@users_app.command("sessions")
def users_sessions(
    email: str = typer.Argument(..., help="The user's email."), as_json: bool = json_option()
) -> None:
    """List a user's live login sessions."""
    from pagecast.services import sessions, users

    async def fetch(ctx: Any) -> Any:
        async with ctx.db.transaction() as session:
            owner = await users.get_by_email(session, email)
            return await sessions.list_active(session, owner.id)

    from pagecast.web import render

    print_table(
        run(fetch),
        [
            ("ID", lambda r: r.id),
            ("STARTED", lambda r: f"{r.created_at:%Y-%m-%d %H:%M}"),
            ("SEEN", lambda r: f"{r.last_seen_at:%Y-%m-%d %H:%M}"),
            ("ADDRESS", lambda r: r.address),
            ("BROWSER", lambda r: r.user_agent),
        ],
        empty=f"No live sessions for {email}.",
        as_json=as_json,
        body=render.login_session,
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


@tokens_app.command("list")
def tokens_list(as_json: bool = json_option()) -> None:
    """List API tokens (their prefix; a token itself is shown once, when created)."""
    from pagecast.cli import backend

    print_table(
        backend.use(lambda b: b.tokens()),
        [
            ("ID", lambda t: t["id"]),
            ("USER", lambda t: t["user_id"]),
            ("NAME", lambda t: t["name"]),
            ("PREFIX", lambda t: t["prefix"]),
            ("CREATED", lambda t: t["created_at"]),
            ("LAST USED", lambda t: t["last_used_at"]),
            ("REVOKED", lambda t: t["revoked_at"]),
        ],
        empty="No API tokens. Create one with `pagecast tokens create --user EMAIL`.",
        as_json=as_json,
    )


@tokens_app.command("revoke")
def tokens_revoke(token_id: int = id_argument()) -> None:
    """Revoke an API token."""
    from pagecast.services import tokens

    async def revoke(ctx: Any) -> Any:
        async with ctx.db.transaction() as session:
            return await tokens.revoke(session, cli_actor(), token_id)

    run(revoke)
    typer.echo(f"Token {token_id} revoked.")


# ------------------------------------------------------------------ queue


@app.command("queue")
def queue(
    retry_failed: bool = typer.Option(
        False,
        "--retry-failed",
        help="Run the failed jobs again (as POST /api/admin/queue/retry-failed).",
    ),
    as_json: bool = json_option(),
) -> None:
    """The sending queue's jobs by state; --retry-failed runs its failed jobs again."""
    from pagecast.cli.data import with_redis

    async def look(ctx: Any) -> dict[str, int]:
        async def work() -> dict[str, int]:
            if retry_failed:
                from pagecast.cli.base import cli_actor
                from pagecast.web.api.admin import audit_queue

                await ctx.queue.retry_failed_jobs()
                await audit_queue(ctx, cli_actor(), "queue.retry_failed", queue="sending")
            return dict(await ctx.queue.counts())

        return await with_redis(ctx, work)

    counts = run(look)
    if as_json:
        print_json(counts)
        return
    if retry_failed:
        typer.echo("Failed jobs queued again.")
    print_table(
        sorted(counts.items()),
        [("STATE", lambda kv: kv[0]), ("JOBS", lambda kv: kv[1])],
        empty="The queue is empty.",
    )


# ------------------------------------------------------------------ config


@config_app.command("docs")
def config_docs() -> None:
    """Print docs/settings.md, generated from the settings."""
    from pagecast.settings import render_settings_doc

    sys.stdout.write(render_settings_doc())
