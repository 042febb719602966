"""`pagecast pages quiet-hours | contacts timezone | campaigns timing | campaigns waiting`:
each person's local time, quiet hours and send windows (issue 20; services/due_times.py)."""

from __future__ import annotations

from typing import Any, NoReturn

import typer

from pagecast.cli.base import (
    campaigns_app,
    cli_actor,
    contacts_app,
    fail,
    id_argument,
    pages_app,
    run,
    validation_line,
)


def _refuse(exc: Exception) -> NoReturn:
    from pagecast.errors import PagecastError

    fail(exc.message if isinstance(exc, PagecastError) else validation_line(exc))


@pages_app.command("quiet-hours")
def pages_quiet_hours(
    page_id: int = id_argument(),
    start: str = typer.Argument("", help='When they start, "HH:MM" (e.g. 21:00).'),
    end: str = typer.Argument("", help='When they end, "HH:MM" (e.g. 08:00).'),
    off: bool = typer.Option(False, "--off", help="No quiet hours for this Page."),
) -> None:
    """Set a Page's quiet hours in each recipient's own time: a delivery due in them waits
    for their end."""
    from pydantic import ValidationError

    from pagecast.errors import PagecastError
    from pagecast.schemas import PageUpdate
    from pagecast.services import pages

    if not off and not (start and end):
        fail('quiet_hours: give START and END ("21:00 08:00"), or --off for none')
    try:
        data = PageUpdate.model_validate(
            {"quiet_hours": None if off else {"start": start, "end": end}}
        )
    except (ValidationError, PagecastError) as exc:
        _refuse(exc)

    async def change(ctx: Any) -> Any:
        async with ctx.db.transaction() as session:
            return await pages.update(
                session, cli_actor(), ctx.vault, page_id, data, verify=ctx.verify_token
            )

    page = run(change)
    quiet = page.quiet_hours
    shown = f"{quiet['start']}–{quiet['end']} in each recipient's time" if quiet else "none"
    typer.echo(f"Page {page.id} ({page.name}) quiet hours: {shown}.")


@contacts_app.command("timezone")
def contacts_timezone(
    contact_id: int = id_argument(),
    zone: str = typer.Argument(..., help='An IANA zone, e.g. "Asia/Manila"; "-" for none.'),
) -> None:
    """Set a contact's own time zone (their local time for local-time sends)."""
    from pydantic import ValidationError

    from pagecast.errors import PagecastError
    from pagecast.schemas import ContactUpdate
    from pagecast.services import contacts

    try:
        data = ContactUpdate.model_validate({"timezone": None if zone == "-" else zone})
    except (ValidationError, PagecastError) as exc:
        _refuse(exc)

    async def change(ctx: Any) -> Any:
        async with ctx.db.transaction() as session:
            return await contacts.update(session, cli_actor(), contact_id, data)

    contact = run(change)
    typer.echo(
        f"Contact {contact.id} ({contact.psid}) is in {contact.timezone or 'the Page zone'}."
    )


@campaigns_app.command("timing")
def campaigns_timing(
    campaign_id: int = id_argument(),
    local_send_at: str | None = typer.Option(
        None, "--local-send-at", help='Each person\'s wall-clock time, e.g. "2026-12-07T10:00".'
    ),
    days: str | None = typer.Option(
        None, "--window-days", help="Send window days, e.g. mon,tue,wed."
    ),
    hours: str | None = typer.Option(
        None, "--window-hours", help='Send window hours, e.g. "09:00-18:00".'
    ),
    clear: bool = typer.Option(False, "--clear", help="Send at once, with no window."),
) -> None:
    """Set when a draft, scheduled or paused-before-start campaign reaches each person: at
    a local time in their zone, and/or within a send window (in their zone)."""
    from pydantic import ValidationError

    from pagecast.errors import PagecastError
    from pagecast.schemas import CampaignUpdate
    from pagecast.services import campaigns

    changes: dict[str, Any] = {}
    if clear:
        changes = {"local_send_at": None, "send_window": None}
    if local_send_at is not None:
        changes["local_send_at"] = local_send_at
    if days is not None or hours is not None:
        start, _, end = (hours or "").partition("-")
        changes["send_window"] = {
            "days": [d for d in (days or "").split(",") if d.strip()],
            "start": start.strip(),
            "end": end.strip(),
        }
    if not changes:
        fail("give --local-send-at, --window-days with --window-hours, or --clear")
    try:
        data = CampaignUpdate.model_validate(changes)
    except (ValidationError, PagecastError) as exc:
        _refuse(exc)

    async def change(ctx: Any) -> Any:
        async with ctx.db.transaction() as session:
            return await campaigns.update(session, cli_actor(), campaign_id, data)

    campaign = run(change)
    local = (
        f"{campaign.local_send_at:%Y-%m-%d %H:%M} local" if campaign.local_send_at else "at once"
    )
    window = campaign.send_window
    shown = (
        f", window {','.join(window['days'])} {window['start']}-{window['end']}" if window else ""
    )
    typer.echo(f"Campaign {campaign.id} sends {local}{shown} (each person's zone).")


@campaigns_app.command("waiting")
def campaigns_waiting(campaign_id: int = id_argument()) -> None:
    """How many of a campaign's deliveries wait for each person's local time (quiet hours,
    send window), and when the next and last fall due."""
    from pagecast.models import utcnow
    from pagecast.services import campaigns, due_plan

    async def fetch(ctx: Any) -> Any:
        async with ctx.db.transaction() as session:
            campaign = await campaigns.get(session, campaign_id)
            count, next_at = await due_plan.count_waiting(session, campaign, utcnow())
            return campaign, count, next_at

    campaign, count, next_at = run(fetch)
    if not count:
        typer.echo(f"Campaign {campaign.id} is {campaign.status.value}: nobody waits.")
        return
    typer.echo(
        f"Campaign {campaign.id} is {campaign.status.value}: {count:,} waiting for local time; "
        f"next at {next_at:%Y-%m-%d %H:%M} UTC, last at {campaign.last_due_at:%Y-%m-%d %H:%M} UTC."
    )
