"""Two-person approval on the command line (issue 22): `pagecast campaigns approve | reject`,
`pagecast pages approval-threshold` and `pagecast users can-approve`.

`approve` and `reject` are written over `cli/backend.py`, so they run on this machine's
database or, with `--url`, as the API token's user. On this machine the CLI acts as itself
("cli"), or as a user with `--as EMAIL` (that user's permissions): either way the author of a
request (the CLI, for a start it asked for) can never decide it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import typer

from pagecast.cli import backend
from pagecast.cli.base import (
    campaigns_app,
    cli_actor,
    fail,
    id_argument,
    pages_app,
    run,
    users_app,
    validation_line,
)
from pagecast.cli.output import json_option, print_object

_AS = typer.Option(
    None, "--as", help="Decide as this user (email), with their permissions (this machine only)."
)


def _decided_lines(body: Mapping[str, Any]) -> list[str]:
    approval = body.get("approval") or {}
    said = f': "{approval["comment"]}"' if approval.get("comment") else ""
    lines = [
        f"Campaign {body['id']} ({body['name']}) {approval.get('state', '')} by "
        f"{approval.get('decided_by')}{said}; it is {body['status']}."
    ]
    if body.get("status_reason"):
        lines.append(f"  {body['status_reason']}")
    return lines


@campaigns_app.command("approve")
def campaigns_approve(
    campaign_id: int = id_argument(),
    comment: str | None = typer.Option(None, "--comment", help="Shown with the approval."),
    as_email: str | None = _AS,
    as_json: bool = json_option(),
) -> None:
    """Approve a campaign awaiting approval: it starts, or is scheduled, as its author asked.
    Its author can never approve it."""
    body = backend.use(lambda b: b.decide(campaign_id, "approve", comment, as_email))
    print_object(body, as_json=as_json, lines=_decided_lines)


@campaigns_app.command("reject")
def campaigns_reject(
    campaign_id: int = id_argument(),
    comment: str = typer.Option(..., "--comment", help="Why (the author reads it); required."),
    as_email: str | None = _AS,
    as_json: bool = json_option(),
) -> None:
    """Reject a campaign awaiting approval: it is a draft again, with your comment."""
    body = backend.use(lambda b: b.decide(campaign_id, "reject", comment, as_email))
    print_object(body, as_json=as_json, lines=_decided_lines)


def approval_lines(approval: Mapping[str, Any] | None) -> list[str]:
    """A campaign's approval for `campaigns show`."""
    if not approval:
        return []
    ask = f"schedule for {approval['scheduled_at']}" if approval["ask"] == "schedule" else "start"
    asked = (
        f"approval {approval['state']}: {approval['requested_by']} asked at "
        f"{approval['requested_at']} to {ask} ({approval['people']:,} people)"
    )
    if approval.get("decided_by"):
        asked += f"; decided by {approval['decided_by']} at {approval['decided_at']}"
    if approval.get("comment"):
        asked += f': "{approval["comment"]}"'
    return [asked]


@pages_app.command("approval-threshold")
def pages_approval_threshold(
    page_id: int = id_argument(),
    people: int | None = typer.Argument(
        None, help="Campaigns to more than this many people need approval (0: all)."
    ),
    off: bool = typer.Option(False, "--off", help="No campaign of the Page needs approval."),
) -> None:
    """Set a Page's approval threshold (`pages approval-threshold 3 1000`: campaigns to
    more than 1,000 people need a second person's approval), or remove it with --off."""
    from pydantic import ValidationError

    from pagecast.schemas import PageUpdate
    from pagecast.services import pages

    if off == (people is not None):
        fail("Give PEOPLE (e.g. `1000`, or `0` for every campaign), or --off.")
    try:
        data = PageUpdate.model_validate({"approval_threshold": None if off else people})
    except ValidationError as exc:
        fail(validation_line(exc))

    async def set_threshold(ctx: Any) -> Any:
        async with ctx.db.transaction() as session:
            return await pages.update(
                session, cli_actor(), ctx.vault, page_id, data, verify=ctx.verify_token
            )

    page = run(set_threshold)
    typer.echo(f"Page {page.id} ({page.name}): {threshold_words(page.approval_threshold)}.")


def threshold_words(threshold: int | None) -> str:
    """The threshold in words, as the CLI and the dashboard say it."""
    if threshold is None:
        return "no campaign needs approval"
    if threshold == 0:
        return "every campaign needs approval"
    return f"campaigns to more than {threshold:,} people need approval"


@users_app.command("can-approve")
def users_can_approve(
    email: str = typer.Argument(..., help="The user's email."),
    allowed: str = typer.Argument(..., help="yes or no."),
) -> None:
    """Give back (yes) or withdraw (no) a user's approve permission (campaigns:approve);
    managers and admins have it unless withdrawn, viewers never."""
    from pagecast.schemas import UserUpdate
    from pagecast.services import users

    if allowed not in ("yes", "no"):
        fail(f"ALLOWED: {allowed!r} is neither yes nor no.")

    async def change(ctx: Any) -> Any:
        async with ctx.db.transaction() as session:
            user = await users.get_by_email(session, email)
            data = UserUpdate(can_approve=allowed == "yes")
            return await users.update(session, cli_actor(), user.id, data)

    user = run(change)
    may = "may" if user.can_approve and user.role.value != "viewer" else "may not"
    typer.echo(f"{user.email} ({user.role.value}) {may} approve campaigns.")
