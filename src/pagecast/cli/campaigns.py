"""`pagecast campaigns list | show | create | start | schedule | pause | resume | cancel |
retry-failed | duplicate | archive | unarchive | delete | watch`: written once over the API's bodies, so each runs on
this machine's database or, with `--url`, on a remote Pagecast (`cli/backend.py`)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import typer

from pagecast.cli import backend
from pagecast.cli.base import campaigns_app, fail, id_argument, optional_id_option
from pagecast.cli.output import json_option, print_object, print_table

_FINAL = ("completed", "cancelled")
_COUNTS = ("total", "pending", "sent", "delivered", "read", "failed", "skipped", "cancelled")


def _count(body: Mapping[str, Any], key: str) -> int:
    return int(body.get("counts", {}).get(key, 0))


def _summary(body: Mapping[str, Any]) -> str:
    if body["status"] == "awaiting_approval":  # issue 22: nothing is counted yet
        people = (body.get("approval") or {}).get("people", 0)
        return (
            f"Campaign {body['id']} ({body['name']}) is awaiting approval ({people:,} people): "
            "another user with campaigns:approve must approve it "
            f"(`pagecast campaigns approve {body['id']}`)."
        )
    return (
        f"Campaign {body['id']} ({body['name']}) is {body['status']}: "
        f"{_count(body, 'pending'):,} pending, {_count(body, 'skipped'):,} skipped of "
        f"{_count(body, 'total'):,}."
    )


@campaigns_app.command("list")
def campaigns_list(
    status: str | None = typer.Option(
        None,
        "--status",
        help="Only campaigns in this status (draft, awaiting_approval, scheduled, sending, "
        "paused, completed, cancelled).",
    ),
    page: int | None = typer.Option(None, "--page", help="Only this Page's campaigns."),
    search: str | None = typer.Option(None, "--search", "-q", help="Part of the name."),
    archived: bool = typer.Option(
        False, "--archived", help="The archived campaigns instead of the others."
    ),
    as_json: bool = json_option(),
) -> None:
    """List campaigns, newest first (the latest 200); archived ones only with --archived."""
    rows = backend.use(
        lambda b: b.campaigns(status=status, page_id=page, search=search, archived=archived)
    )
    print_table(
        rows,
        [
            ("ID", lambda c: c["id"]),
            ("STATUS", lambda c: c["status"]),
            ("PAGE", lambda c: c["page_id"]),
            ("NAME", lambda c: c["name"]),
            ("CREATED", lambda c: c["created_at"]),
            ("SENT", lambda c: _count(c, "sent")),
            ("DELIVERED", lambda c: _count(c, "delivered")),
            ("READ", lambda c: _count(c, "read")),
            ("FAILED", lambda c: _count(c, "failed")),
        ],
        empty="No campaigns.",
        as_json=as_json,
    )


def _show_lines(body: Mapping[str, Any]) -> Iterator[str]:
    yield f"Campaign {body['id']} ({body['name']}) is {body['status']}."
    if body.get("status_reason"):
        yield f"  {body['status_reason']}"
    yield "  ".join(f"{key} {_count(body, key):,}" for key in _COUNTS)
    engaged = body.get("engagement") or {}
    if engaged:
        yield f"clicked {engaged.get('clicked', 0):,}  replied {engaged.get('replied', 0):,}"
    for key in ("scheduled_at", "started_at", "completed_at"):
        if body.get(key):
            yield f"{key.removesuffix('_at')} {body[key]}"
    from pagecast.cli.approvals import approval_lines  # issue 22

    yield from approval_lines(body.get("approval"))


@campaigns_app.command("show")
def campaigns_show(campaign_id: int = id_argument(), as_json: bool = json_option()) -> None:
    """A campaign's status, its deliveries by status, and its clicks and replies."""
    print_object(backend.use(lambda b: b.campaign(campaign_id)), as_json=as_json, lines=_show_lines)


def _audience(
    audience: str, tags: list[str], exclude_tags: list[str], psids: list[str], segment: int | None
) -> dict[str, Any]:
    """The API's `audience` from the flags; a flag of another audience is refused, not lost."""
    given = {"--tag": tags, "--exclude-tag": exclude_tags, "--psid": psids, "--segment": segment}
    wanted = {"all": (), "tags": ("--tag", "--exclude-tag"), "psids": ("--psid",)}
    wanted["segment"] = ("--segment",)
    if audience not in wanted:
        fail(
            f"--audience: {audience!r} is not an audience; use all, tags, psids or segment "
            "(--file for a filter)."
        )
    stray = [flag for flag, value in given.items() if value and flag not in wanted[audience]]
    if stray:
        needs = {"--tag": "tags", "--exclude-tag": "tags", "--psid": "psids"}
        fail(f"{stray[0]} needs --audience {needs.get(stray[0], 'segment')}.")
    if audience == "tags":
        return {"type": "tags", "include": tags, "exclude": exclude_tags}
    if audience == "psids":
        chosen = [p.strip() for value in psids for p in value.split(",") if p.strip()]
        if not chosen:
            fail("--audience psids needs the people's PSIDs: --psid P (repeat) or --psid P1,P2.")
        return {"type": "contacts", "psids": chosen}
    if audience == "segment":
        if segment is None:
            fail("--audience segment needs --segment ID (`pagecast segments list --page ID`).")
        return {"type": "segment", "segment_id": segment}
    return {"type": "all"}


def _body_from_flags(
    page: int | None,
    name: str | None,
    text: str | None,
    content_file: Path | None,
    audience: dict[str, Any],
    messaging_type: str | None,
) -> dict[str, Any]:
    if page is None or name is None:
        fail("--page and --name are needed (or give the whole body with --file).")
    if (text is None) == (content_file is None):
        fail("Give the message with --text or --content-file (one of them).")
    content = {"text": text} if text is not None else _json_file(content_file, "--content-file")
    body = {"page_id": page, "name": name, "content": content, "audience": audience}
    if messaging_type is not None:
        body["messaging_type"] = messaging_type
    return body


def _json_file(path: Path | None, option: str) -> Any:
    assert path is not None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        fail(f"{option}: {path} cannot be read ({exc.strerror}).")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        fail(f"{option}: {path} is not JSON ({exc}); write the API's body as JSON.")


@campaigns_app.command("create")
def campaigns_create(
    page: int | None = typer.Option(None, "--page", help="Page id (`pagecast pages list`)."),
    name: str | None = typer.Option(None, "--name", help="The campaign's name."),
    text: str | None = typer.Option(None, "--text", help="The message's text."),
    content_file: Path | None = typer.Option(
        None, "--content-file", help="The message as JSON (the API's `content`)."
    ),
    audience: str = typer.Option(
        "all",
        "--audience",
        help="all; tags (with --tag); psids (chosen people, with --psid); segment (--segment).",
    ),
    tag: list[str] = typer.Option([], "--tag", help="Reach contacts with this tag; repeat."),
    exclude_tag: list[str] = typer.Option([], "--exclude-tag", help="Leave out this tag."),
    psid: list[str] = typer.Option(
        [], "--psid", help="A chosen person's PSID (`pagecast contacts list`); repeat, or a,b."
    ),
    segment: int | None = optional_id_option(
        "--segment", "A saved segment's id (`pagecast segments list --page ID`)."
    ),
    messaging_type: str | None = typer.Option(
        None, "--messaging-type", help="RESPONSE, UPDATE or MESSAGE_TAG (default: the API's)."
    ),
    file: Path | None = typer.Option(
        None, "--file", help="The whole body of POST /api/campaigns as JSON, instead of flags."
    ),
    as_json: bool = json_option(),
) -> None:
    """Create a draft campaign from flags, or from a JSON file with the API's body."""
    if file is not None:
        body = _json_file(file, "--file")
        if not isinstance(body, dict):
            fail(f"--file: {file} holds JSON but not an object; write the API's body.")
    else:
        chosen = _audience(audience, tag, exclude_tag, psid, segment)
        body = _body_from_flags(page, name, text, content_file, chosen, messaging_type)
    created = backend.use(lambda b: b.create_campaign(body))
    if as_json:
        print_object(created, as_json=True)
    else:
        typer.echo(
            f"Created draft campaign {created['id']} ({created['name']}). Start it with "
            f"`pagecast campaigns start {created['id']}`."
        )


def _action(action: str, campaign_id: int, as_json: bool = False) -> dict[str, Any]:
    body = backend.use(lambda b: b.act(campaign_id, action))
    if as_json:
        print_object(body, as_json=True)
    return body


@campaigns_app.command("start")
def campaigns_start(campaign_id: int = id_argument()) -> None:
    """Start a campaign: snapshot its audience and queue the sends."""
    typer.echo(_summary(_action("start", campaign_id)))


@campaigns_app.command("pause")
def campaigns_pause(campaign_id: int = id_argument()) -> None:
    """Pause a sending campaign (takes effect within one chunk)."""
    typer.echo(_summary(_action("pause", campaign_id)))


@campaigns_app.command("resume")
def campaigns_resume(campaign_id: int = id_argument()) -> None:
    """Resume a paused campaign."""
    typer.echo(_summary(_action("resume", campaign_id)))


@campaigns_app.command("cancel")
def campaigns_cancel(campaign_id: int = id_argument()) -> None:
    """Cancel a campaign: its pending deliveries become cancelled."""
    typer.echo(_summary(_action("cancel", campaign_id)))


@campaigns_app.command("schedule")
def campaigns_schedule(
    campaign_id: int = id_argument(),
    at: datetime = typer.Option(
        ...,
        "--at",
        formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M%z", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"],
        help="When to start, ISO 8601 (2026-12-24T09:00+01:00; without an offset: UTC).",
    ),
) -> None:
    """Start a draft by itself at a time: sets its `scheduled_at`, then schedules it."""
    from datetime import UTC

    when = at if at.tzinfo is not None else at.replace(tzinfo=UTC)

    async def schedule(b: backend.Backend) -> dict[str, Any]:
        await b.update_campaign(campaign_id, {"scheduled_at": when.isoformat()})
        return await b.act(campaign_id, "schedule")

    body = backend.use(schedule)
    typer.echo(f"Campaign {body['id']} ({body['name']}) is scheduled for {body['scheduled_at']}.")


@campaigns_app.command("retry-failed")
def campaigns_retry_failed(campaign_id: int = id_argument()) -> None:
    """Send a campaign's failed deliveries again (those a retry can cure)."""
    body = _action("retry-failed", campaign_id)
    typer.echo(f"{body.get('retried', 0):,} failed deliveries queued again. {_summary(body)}")


@campaigns_app.command("duplicate")
def campaigns_duplicate(campaign_id: int = id_argument()) -> None:
    """A new draft with the campaign's settings."""
    body = _action("duplicate", campaign_id)
    typer.echo(f"Created draft campaign {body['id']} ({body['name']}) from {campaign_id}.")


@campaigns_app.command("archive")
def campaigns_archive(campaign_id: int = id_argument(), as_json: bool = json_option()) -> None:
    """Take a completed or cancelled campaign out of `campaigns list` (--archived lists it)."""
    body = _action("archive", campaign_id, as_json)
    if not as_json:
        typer.echo(
            f"Campaign {body['id']} ({body['name']}) is archived; "
            f"`pagecast campaigns unarchive {body['id']}` puts it back."
        )


@campaigns_app.command("unarchive")
def campaigns_unarchive(campaign_id: int = id_argument(), as_json: bool = json_option()) -> None:
    """Put an archived campaign back in `campaigns list`."""
    body = _action("unarchive", campaign_id, as_json)
    if not as_json:
        typer.echo(f"Campaign {body['id']} ({body['name']}) is back in the list.")


@campaigns_app.command("delete")
def campaigns_delete(
    campaign_id: int = id_argument(),
    yes: bool = typer.Option(False, "--yes", help="Delete without asking."),
) -> None:
    """Delete a campaign that is not sending (a draft, scheduled or finished one) and its
    deliveries."""
    if not yes:
        # With no one to answer (a script, a pipe), the question would end as "Aborted.".
        asked = sys.stdin.isatty() and typer.confirm(
            f"Delete campaign {campaign_id} and its deliveries?"
        )
        if not asked:
            fail("Nothing deleted (pass --yes to delete without the question).")
    backend.use(lambda b: b.delete_campaign(campaign_id))
    typer.echo(f"Campaign {campaign_id} deleted.")


@campaigns_app.command("watch")
def campaigns_watch(
    campaign_id: int = id_argument(),
    every: float = typer.Option(1.0, "--every", min=0.1, help="Seconds between two looks."),
) -> None:
    """A live progress bar of a campaign until it is completed or cancelled (Ctrl-C stops
    watching, not the campaign)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    async def watch(b: backend.Backend) -> dict[str, Any]:
        body = await b.campaign(campaign_id)
        if body["status"] == "draft":  # nothing would ever move: watching would never end
            return body
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
        with Progress(*columns, TextColumn("{task.fields[status]}")) as bar:
            task = bar.add_task(body["name"], total=None, status=body["status"])
            while True:
                total = _count(body, "total")
                done = total - _count(body, "pending") - _count(body, "sending")
                bar.update(task, total=total or None, completed=done, status=body["status"])
                if body["status"] in _FINAL:
                    return body
                await asyncio.sleep(every)
                body = await b.campaign(campaign_id)

    body = backend.use(watch)
    if body["status"] == "draft":
        fail(
            f"Campaign {campaign_id} ({body['name']}) is a draft: nothing is sending to watch. "
            f"Start it with `pagecast campaigns start {campaign_id}`."
        )
    typer.echo(_summary(body))
