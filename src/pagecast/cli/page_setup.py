"""`pagecast pages sync | webhook | connect-facebook | attachment`: a Page's audience sync,
its webhook setup help, connecting Pages with a Facebook user token, and media uploaded
once."""

from __future__ import annotations

from typing import Any

import typer

from pagecast.cli.base import cli_actor, fail, id_argument, pages_app, run, validation_line


@pages_app.command("sync")
def pages_sync(
    page_id: int = id_argument("Page id (see `pagecast pages list`)."),
    status: bool = typer.Option(
        False, "--status", help="Show the latest sync of the Page instead of starting one."
    ),
) -> None:
    """Sync the Page's audience from its conversations (in this process, with a progress bar)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from pagecast.services import page_syncs

    async def latest(ctx: Any) -> Any:
        async with ctx.db.transaction() as session:
            return await page_syncs.latest(session, page_id)

    if status:
        sync = run(latest)
        if sync is None:
            typer.echo(
                f"Page {page_id} has not been synced yet; run `pagecast pages sync {page_id}`."
            )
            return
        _print(page_syncs.report(sync))
        return

    async def sync_here(ctx: Any) -> Any:
        columns = (
            TextColumn("Syncing Page {task.fields[page]}"),
            BarColumn(),
            TextColumn(
                "{task.fields[threads]:,} threads, {task.fields[created]:,} new, "
                "{task.fields[updated]:,} updated contacts, {task.fields[calls]} calls"
            ),
            TimeElapsedColumn(),
        )
        with Progress(*columns, transient=False) as bar:
            # The Conversations API does not say how many threads there are: no total.
            task = bar.add_task(
                "sync", total=None, page=page_id, threads=0, created=0, updated=0, calls=0
            )

            def show(p: Any) -> None:
                bar.update(
                    task,
                    threads=p.threads_seen,
                    created=p.contacts_created,
                    updated=p.contacts_updated,
                    calls=p.calls,
                )

            return await ctx.syncs.run_here(cli_actor(), page_id, show)

    report = page_syncs.report(run(sync_here))
    _print(report)
    if report["state"] != "completed":
        raise typer.Exit(1)


def _print(report: dict[str, Any]) -> None:
    typer.echo(
        f"Sync {report['id']} of Page {report['page_id']}: {report['state']} "
        f"(started {report['started_at']} by {report['started_by']}, "
        f"{report['elapsed_seconds']:g} s). {report['threads_seen']:,} threads, "
        f"{report['contacts_created']:,} contacts created, "
        f"{report['contacts_updated']:,} updated, {report['calls']} calls."
    )
    if report["error"]:
        typer.echo(f"Error: {report['error']}", err=True)


@pages_app.command("webhook")
def pages_webhook(
    page_id: int = id_argument("Page id (see `pagecast pages list`)."),
) -> None:
    """What to enter in the Facebook app's webhook setup for the Page, and whether events arrive."""
    from pagecast.services import webhook_setup

    async def describe(ctx: Any) -> Any:
        settings = ctx.settings
        token = settings.webhook_verify_token
        async with ctx.db.transaction() as session:
            return await webhook_setup.describe(
                session,
                page_id,
                public_url=settings.public_url,
                fallback_base_url=f"http://{settings.host}:{settings.port}",
                verify_token=token.get_secret_value() if token else None,
                show_verify_token=True,  # the CLI runs as admin, on the server
                global_app_secret_set=settings.app_secret is not None,
            )

    help_ = run(describe)
    events = help_["events"]
    last = events["last_received_at"]
    counts = ", ".join(f"{kind} {n:,}" for kind, n in events["last_24h"].items()) or "none"
    typer.echo(f"Callback URL:  {help_['callback_url']}")
    typer.echo(
        f"Verify token:  {help_['verify_token'] or '(not set: PAGECAST_WEBHOOK_VERIFY_TOKEN)'}"
    )
    typer.echo(f"Fields:        {', '.join(help_['fields'])}")
    typer.echo(
        f"App secret:    {'set (' + help_['app_secret_from'] + ')' if help_['app_secret_set'] else 'not set'}"
    )
    typer.echo(f"Last event:    {last.isoformat(timespec='seconds') if last else 'never'}")
    typer.echo(f"Last 24 h:     {counts}")
    for warning in help_["warnings"]:
        typer.echo(f"Warning: {warning}", err=True)


@pages_app.command("connect-facebook")
def pages_connect_facebook(
    user_token: str = typer.Option(
        ...,
        "--user-token",
        help="A Facebook user access token of someone who manages the Pages (from Facebook "
        "Login or the Graph API Explorer, for the app of PAGECAST_APP_ID).",
        prompt=True,
        hide_input=True,
        envvar="PAGECAST_FACEBOOK_USER_TOKEN",
    ),
    page: list[str] = typer.Option(
        [],
        "--page",
        help="Facebook id of a Page to connect (repeat); default: every Page listed that is "
        "not connected yet. A connected Page's token is replaced only when named here.",
    ),
) -> None:
    """Connect Pages as "Connect with Facebook" does: long-lived token, the person's Pages,
    each Page's token stored, webhooks subscribed, permissions said. Leave --user-token out
    to be asked for it without echo (or set PAGECAST_FACEBOOK_USER_TOKEN): a token on the
    command line stays in the shell's history and shows in `ps`."""
    from pydantic import ValidationError

    from pagecast.schemas import FacebookConnect
    from pagecast.services import facebook_connect

    try:
        body = FacebookConnect.model_validate(
            {"user_access_token": user_token, "page_ids": page or None}
        )
    except ValidationError as exc:
        fail(validation_line(exc))

    async def connect(ctx: Any) -> Any:
        facebook = ctx.facebook_login()
        listing = await facebook_connect.sign_in(facebook, body.user_access_token)
        async with ctx.db.transaction() as session:
            stored = await facebook_connect.connect_pages(
                session,
                cli_actor(),
                ctx.vault,
                listing,
                page_ids=body.page_ids,
                default_send_rate=ctx.settings.default_page_send_rate,
            )
        return await facebook_connect.subscribe(facebook, stored)

    report = run(connect)
    for p in report["pages"]:
        done = {
            "connected": f"connected as Page {p['page_id']}",
            "token_replaced": f"already Page {p['page_id']}; its token was replaced",
            "not_connected": "not connected",
        }[p["result"]]
        hooks = (
            ""
            if p["page_id"] is None
            else (", webhooks subscribed" if p["subscribed"] else ", webhooks NOT subscribed")
        )
        typer.echo(f"{p['name']} ({p['fb_page_id']}): {done}{hooks}.")
        if p["problem"]:
            typer.echo(f"Warning: {p['problem']}", err=True)
    granted = [r["permission"] for r in report["permissions"] if r["status"] == "granted"]
    typer.echo(f"Granted: {', '.join(granted) or 'none'}.")
    for row in report["permissions"]:
        if row["status"] != "granted":
            typer.echo(f"Missing {row['permission']} ({row['status']}): {row['stops']}", err=True)


@pages_app.command("attachment")
def pages_attachment(
    page_id: int = id_argument("Page id (see `pagecast pages list`)."),
    url: str = typer.Option(..., "--url", help="The file's public https:// URL."),
    kind: str = typer.Option("image", "--type", help="image, video, audio or file."),
) -> None:
    """Upload media once for the Page and print its attachment_id (the same URL again prints
    the kept id without a new upload); send it as content.attachment.attachment_id."""
    from pagecast import uploads
    from pagecast.errors import InvalidInput

    async def upload(ctx: Any) -> tuple[str, bool]:
        try:
            return await uploads.upload_attachment(ctx, cli_actor(), page_id, kind, url)
        except InvalidInput as exc:  # the options are --type and --url
            if exc.field not in ("type", "url"):
                raise
            raise InvalidInput(f"--{exc.message}", field=exc.field) from None

    attachment_id, uploaded = run(upload)
    typer.echo(f"{attachment_id}{'' if uploaded else ' (uploaded before; reused)'}")
