"""`pagecast pages | contacts | campaigns`: the data people work with."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

from pagecast.cli.base import (
    campaigns_app,
    cli_actor,
    contacts_app,
    fail,
    id_argument,
    id_option,
    pages_app,
    run,
    validation_line,
)
from pagecast.cli.output import json_option, print_table

T = TypeVar("T")

# ------------------------------------------------------------------ pages, contacts, campaigns


@pages_app.command("add")
def pages_add(
    token: str = typer.Option(
        ..., "--token", help="Page access token.", prompt=True, hide_input=True
    ),
    app_secret: str | None = typer.Option(None, help="The app's secret (adds appsecret_proof)."),
) -> None:
    """Connect a Page with its access token (checked with the Graph API)."""
    from pagecast.schemas import PageCreate
    from pagecast.services import pages

    async def connect(ctx: Any) -> Any:
        async with ctx.db.transaction() as session:
            return await pages.connect(
                session,
                cli_actor(),
                ctx.vault,
                PageCreate(access_token=token, app_secret=app_secret),
                verify=ctx.verify_token,
                default_send_rate=ctx.settings.default_page_send_rate,
            )

    page = run(connect)
    typer.echo(f"Connected {page.name} ({page.fb_page_id}) as Page {page.id}.")


@pages_app.command("list")
def pages_list(as_json: bool = json_option()) -> None:
    """List connected Pages."""
    from pagecast.cli import backend

    print_table(
        backend.use(lambda b: b.pages()),
        [
            ("ID", lambda p: p["id"]),
            ("FACEBOOK ID", lambda p: p["fb_page_id"]),
            ("NAME", lambda p: p["name"]),
            ("STATUS", lambda p: p["status"]),
            ("RATE", lambda p: f"{p['send_rate']:g}/s"),
            ("TIME ZONE", lambda p: p["timezone"]),
        ],
        empty="No Pages. Connect one with `pagecast pages add` or `pagecast pages connect-facebook`.",
        as_json=as_json,
    )


@pages_app.command("timezone")
def pages_timezone(
    page_id: int = id_argument(),
    zone: str = typer.Argument(..., help='An IANA time zone name, e.g. "Asia/Manila" or "UTC".'),
) -> None:
    """Set a Page's default time zone (its audience's local time)."""
    from pydantic import ValidationError

    from pagecast.schemas import PageUpdate
    from pagecast.services import pages

    try:
        data = PageUpdate.model_validate({"timezone": zone})
    except ValidationError as exc:
        fail(validation_line(exc))

    async def set_zone(ctx: Any) -> Any:
        async with ctx.db.transaction() as session:
            return await pages.update(
                session, cli_actor(), ctx.vault, page_id, data, verify=ctx.verify_token
            )

    page = run(set_zone)
    typer.echo(f"Page {page.id} ({page.name}) is in {page.timezone}.")


@pages_app.command("frequency-cap")
def pages_frequency_cap(
    page_id: int = id_argument(),
    messages: int | None = typer.Argument(None, help="At most this many campaign messages…"),
    days: int | None = typer.Argument(None, help="…per person in this many days."),
    off: bool = typer.Option(False, "--off", help="Remove the cap."),
) -> None:
    """Set a Page's frequency cap (`pages frequency-cap 3 2 7`: at most 2 campaign messages
    per person in 7 days), or remove it with --off."""
    from pydantic import ValidationError

    from pagecast.schemas import PageUpdate
    from pagecast.services import frequency_cap, pages

    if off == (messages is not None or days is not None):
        fail("Give MESSAGES and DAYS (e.g. `2 7`), or --off to remove the cap.")
    if not off and (messages is None or days is None):
        fail("Give both MESSAGES and DAYS (e.g. `2 7`: at most 2 messages in 7 days).")
    cap = None if off else {"messages": messages, "days": days}
    try:
        data = PageUpdate.model_validate({"frequency_cap": cap})
    except ValidationError as exc:
        fail(validation_line(exc))

    async def set_cap(ctx: Any) -> Any:
        async with ctx.db.transaction() as session:
            return await pages.update(
                session, cli_actor(), ctx.vault, page_id, data, verify=ctx.verify_token
            )

    page = run(set_cap)
    typer.echo(
        f"Page {page.id} ({page.name}) frequency cap: {frequency_cap.words(page.frequency_cap)}."
    )


@contacts_app.command("import")
def contacts_import(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True, help="CSV file."),
    page: int = id_option("--page", "Page id (see `pagecast pages list`)."),
) -> None:
    """Import contacts from a CSV file (psid, first_name, last_name, tags, last_inbound_at).

    Runs here, in batches, with a progress bar; the import is a job like the API's, so
    `pagecast contacts imports`, the API and the dashboard show its progress meanwhile.
    """
    from rich.progress import Progress

    from pagecast.errors import PayloadTooLarge
    from pagecast.services import import_jobs

    size = file.stat().st_size

    async def run_import(ctx: Any) -> Any:
        limit = ctx.settings.import_max_bytes
        if size > limit:
            raise PayloadTooLarge(
                f"{file} is {size:,} bytes, over the {limit:,}-byte limit "
                "(PAGECAST_IMPORT_MAX_BYTES). Split it into smaller files, or raise the limit.",
                field="file",
            )
        with Progress(transient=True) as progress:
            task = progress.add_task(f"Importing {file.name}", total=max(size, 1))
            return await ctx.imports.run_here(
                cli_actor(),
                page,
                file,
                on_progress=lambda job: progress.update(task, completed=job.bytes_read),
            )

    report = import_jobs.report(run(run_import))
    typer.echo(
        f"Import {report['id']} {report['state']}: {report['rows']:,} rows read, "
        f"{report['created']:,} created, {report['updated']:,} updated, "
        f"{report['refused']:,} refused."
    )
    for error in report["errors"][:50]:
        typer.echo(f"  row {error['row']}, {error['column']}: {error['reason']}", err=True)
    if report["refused"] > 50:
        typer.echo(f"  … and {report['refused'] - 50:,} more.", err=True)
    if report["ignored_columns"]:
        typer.echo(f"Ignored columns: {', '.join(report['ignored_columns'])}")
    if report["error"]:
        typer.echo(f"Error: {report['error']}", err=True)
    if report["state"] != "completed":
        raise typer.Exit(1)


@contacts_app.command("imports")
def contacts_imports(
    page: int | None = typer.Option(None, "--page", help="Only this Page's imports."),
    as_json: bool = json_option(),
) -> None:
    """List recent contact imports (any process's), newest first, with their progress."""
    from pagecast.services import import_jobs

    async def fetch(ctx: Any) -> Any:
        async with ctx.db.reading() as session:
            jobs = await import_jobs.list_recent(session, page_id=page, limit=50)
            return [import_jobs.report(j, errors=False) for j in jobs]

    print_table(
        run(fetch),
        [
            ("ID", lambda j: j["id"]),
            ("PAGE", lambda j: j["page_id"]),
            ("STATE", lambda j: j["state"]),
            ("PROGRESS", lambda j: f"{j['progress'] * 100:.0f} %"),
            ("ROWS", lambda j: j["rows"]),
            ("CREATED", lambda j: j["created"]),
            ("UPDATED", lambda j: j["updated"]),
            ("REFUSED", lambda j: j["refused"]),
            ("FILE", lambda j: j["file_name"]),
        ],
        empty="No imports.",
        as_json=as_json,
    )


@contacts_app.command("tester")
def contacts_tester(
    contact_id: int = id_argument(),
    on: bool = typer.Option(
        True, "--on/--off", help="Make the contact a tester of its Page, or stop it being one."
    ),
) -> None:
    """Mark a contact as a tester of its Page ("Send test" goes to testers only)."""
    from pagecast.schemas import ContactUpdate
    from pagecast.services import contacts

    async def mark(ctx: Any) -> Any:
        async with ctx.db.transaction() as session:
            return await contacts.update(
                session, cli_actor(), contact_id, ContactUpdate(is_tester=on)
            )

    contact = run(mark)
    said = "is a tester" if contact.is_tester else "is not a tester"
    typer.echo(f"Contact {contact.id} (PSID {contact.psid}) {said} of Page {contact.page_id}.")


@contacts_app.command("testers")
def contacts_testers(
    page: int = id_option("--page", "Page id (see `pagecast pages list`)."),
    as_json: bool = json_option(),
) -> None:
    """List a Page's testers (the first 100; a line on stderr says when there are more)."""
    from pagecast.services import pages, testers

    async def fetch(ctx: Any) -> Any:
        async with ctx.db.transaction() as session:
            await pages.get(session, page)
            return await testers.list_for_page(session, page)

    listed = run(fetch)
    print_table(
        listed.testers,
        [
            ("ID", lambda c: c.id),
            ("PSID", lambda c: c.psid),
            ("NAME", lambda c: " ".join(n for n in (c.first_name, c.last_name) if n)),
        ],
        empty=f"No testers on Page {page}. Make one with `pagecast contacts tester ID`.",
        as_json=as_json,
        body=lambda c: {
            "id": c.id,
            "psid": c.psid,
            "first_name": c.first_name,
            "last_name": c.last_name,
        },
    )
    if listed.more:
        typer.echo(
            f"Only the first {testers.TESTERS_LISTED} testers are listed; the API lists them "
            f"all: GET /api/pages/{page}/contacts?is_tester=true.",
            err=True,
        )


async def with_redis(ctx: Any, work: Callable[[], Awaitable[T]]) -> T:
    """`work()` with a Redis: REDIS_URL's, else the data dir's embedded one, joined when a
    `pagecast serve` runs it (so its queue, limiter and throttles are the ones shared), or
    started for this command and stopped after."""
    if ctx.redis_url is not None:
        return await work()
    from pagecast.embedded_redis import EmbeddedRedis

    embedded = EmbeddedRedis(ctx.settings.data_dir)
    ctx.redis_url = await embedded.start()
    try:
        return await work()
    finally:
        await ctx.close()
        await embedded.stop()


@campaigns_app.command("test")
def campaigns_test(
    campaign_id: int = id_argument(),
    contact: list[int] = typer.Option(
        ..., "--contact", help="A tester's contact id; repeat for several."
    ),
) -> None:
    """Send the campaign's message now to testers of its Page: one line per tester."""
    from pagecast import tester_sends
    from pagecast.schemas import ID_MAX, TESTERS_PER_SEND

    if len(contact) > TESTERS_PER_SEND:
        fail(f"--contact: at most {TESTERS_PER_SEND} testers at once, not {len(contact)}.")
    for value in contact:
        if not 1 <= value <= ID_MAX:
            fail(f"--contact: {value} is not an id: ids run from 1 to {ID_MAX}.")

    async def send(ctx: Any) -> Any:
        # The Page's limiter and throttles are shared with a running `pagecast serve`.
        return await with_redis(
            ctx, lambda: tester_sends.send_tests(ctx, cli_actor(), campaign_id, contact)
        )

    results = run(send)
    for result in results:
        said = f"sent ({result.message_id})" if result.status == "sent" else result.status
        typer.echo(
            f"contact {result.contact_id}: {said}{': ' + result.reason if result.reason else ''}"
        )
    if any(result.status != "sent" for result in results):
        raise typer.Exit(1)
