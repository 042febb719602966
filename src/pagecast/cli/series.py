"""`pagecast series create | list | show | pause | resume | end` (issue 20): recurring
campaigns from the command line, on the same services as the API and the dashboard."""

from __future__ import annotations

import json
from typing import Any

import typer

from pagecast.cli.base import cli_actor, fail, id_argument, id_option, run, series_app
from pagecast.cli.output import json_option, print_json, print_table


def _when(value: Any, zone: str) -> str:
    """A time in the series' zone with its offset: "2026-12-07 09:00 UTC+08:00"."""
    from pagecast import timezones

    if value is None:
        return "—"
    return f"{timezones.to_local(value, zone):%Y-%m-%d %H:%M} {timezones.offset_text(zone, value)}"


@series_app.command("create")
def series_create(
    page: int = id_option("--page", "Page id (see `pagecast pages list`)."),
    name: str = typer.Option(..., "--name", help="The series' name."),
    daily: str | None = typer.Option(None, "--daily", help="Every day at HH:MM."),
    weekly: str | None = typer.Option(
        None, "--weekly", help="Days, comma-separated (mon,thu), with --at HH:MM."
    ),
    at: str | None = typer.Option(None, "--at", help="HH:MM, with --weekly."),
    cron: str | None = typer.Option(None, "--cron", help='A cron expression: "0 9 * * 1-5".'),
    timezone: str | None = typer.Option(
        None, "--timezone", help="An IANA zone (default: the Page's)."
    ),
    mode: str = typer.Option(
        "never_twice", "--mode", help="never_twice (never the same person twice) or once_per_run."
    ),
    text: str | None = typer.Option(None, "--text", help="The message's text."),
    content: str | None = typer.Option(
        None, "--content", help="The campaign fields as JSON (content, audience, …), instead."
    ),
    tags: str | None = typer.Option(
        None, "--tags", help="Audience: contacts with any of these tags."
    ),
) -> None:
    """Create a series: one schedule of --daily, --weekly with --at, or --cron."""
    from pydantic import ValidationError

    from pagecast.errors import InvalidInput
    from pagecast.series_schema import SeriesCreate
    from pagecast.services import series

    given = [n for n, v in (("--daily", daily), ("--weekly", weekly), ("--cron", cron)) if v]
    if len(given) != 1:
        fail("schedule: give one of --daily HH:MM, --weekly DAYS --at HH:MM or --cron EXPRESSION")
    if daily:
        schedule: dict[str, Any] = {"kind": "daily", "time": daily}
    elif weekly:
        schedule = {"kind": "weekly", "days": [d for d in weekly.split(",") if d], "time": at or ""}
    else:
        schedule = {"kind": "cron", "cron": cron}
    try:
        fields = json.loads(content) if content else {"content": {"text": text or ""}}
    except json.JSONDecodeError as exc:
        fail(f"--content: not JSON ({exc.msg} at character {exc.pos}); give an object")
    if not isinstance(fields, dict):
        fail(
            '--content: give a JSON object of campaign fields, e.g. \'{"content": {"text": "Hi"}}\''
        )
    if tags:
        fields["audience"] = {"type": "tags", "include": [t.strip() for t in tags.split(",")]}
    body = fields | {
        "name": name,
        "page_id": page,
        "schedule": schedule,
        "timezone": timezone,
        "mode": mode,
    }
    try:
        data = SeriesCreate.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"][:1])
        fail(f"{field}: {str(first['msg']).removeprefix('Value error, ')}")
    except InvalidInput as exc:
        fail(exc.message)

    async def create(ctx: Any) -> Any:
        async with ctx.db.transaction() as session:
            return await series.create(session, cli_actor(), data)

    row = run(create)
    typer.echo(
        f"Series {row.id} ({row.name}) is active; its first run is "
        f"{_when(row.next_run_at, row.timezone)}."
    )


@series_app.command("list")
def series_list(as_json: bool = json_option()) -> None:
    """List series, newest first: id, status, next run (in the series' zone), schedule, name."""
    from pagecast.services import series, series_schedule
    from pagecast.web import series_render

    async def fetch(ctx: Any) -> Any:
        async with ctx.db.transaction() as session:
            return await series.list_all(session, limit=200)

    def next_at(row: Any) -> str:
        return _when(row.next_run_at, row.timezone) if row.status.value == "active" else "—"

    print_table(
        run(fetch),
        [
            ("ID", lambda r: r.id),
            ("STATUS", lambda r: r.status.value),
            ("NEXT RUN", next_at),
            ("SCHEDULE", lambda r: series_schedule.describe(r.schedule, r.timezone)),
            ("MODE", lambda r: r.mode.value),
            ("NAME", lambda r: r.name),
        ],
        empty="No series. Create one with `pagecast series create`.",
        as_json=as_json,
        body=series_render.series,
    )


@series_app.command("show")
def series_show(series_id: int = id_argument(), as_json: bool = json_option()) -> None:
    """A series, its next runs and its runs (each a campaign: `pagecast campaigns list`)."""
    from pagecast.services import campaigns, series, series_schedule
    from pagecast.web import series_render

    async def fetch(ctx: Any) -> Any:
        async with ctx.db.transaction() as session:
            row = await series.get(session, series_id)
            return row, await series.runs(session, series_id)

    row, runs = run(fetch)
    if as_json:
        print_json(series_render.series(row, runs))
        return
    typer.echo(f"Series {row.id}: {row.name} ({row.status.value}, {row.mode.value})")
    typer.echo(f"Page {row.page_id}; {series_schedule.describe(row.schedule, row.timezone)}")
    if row.status_reason:
        typer.echo(row.status_reason)
    for at in series.upcoming(row):
        typer.echo(f"next\t{_when(at, row.timezone)}")
    for campaign in runs:
        state = "missed" if campaign.missed else campaign.status.value
        reached = campaigns.reached(campaign)
        typer.echo(
            f"run\t{_when(campaign.run_at, row.timezone)}\tcampaign {campaign.id}\t{state}\t"
            f"{campaign.n_total} people\t{reached} sent\t{campaign.n_failed} failed"
        )


def _act(action: str, series_id: int) -> None:
    from pagecast.services import series

    async def act(ctx: Any) -> Any:
        async with ctx.db.transaction() as session:
            return await getattr(series, action)(session, cli_actor(), series_id)

    row = run(act)
    active = row.status.value == "active" and row.next_run_at is not None
    next_at = f"; next run {_when(row.next_run_at, row.timezone)}" if active else ""
    typer.echo(f"Series {row.id} is {row.status.value}{next_at}.")


@series_app.command("pause")
def series_pause(series_id: int = id_argument()) -> None:
    """Pause a series: no run starts until it is resumed."""
    _act("pause", series_id)


@series_app.command("resume")
def series_resume(series_id: int = id_argument()) -> None:
    """Resume a paused series from its schedule's next time."""
    _act("resume", series_id)


@series_app.command("end")
def series_end(series_id: int = id_argument()) -> None:
    """End a series for good (its runs stay as campaigns)."""
    _act("end", series_id)
