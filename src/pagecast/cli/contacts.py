"""`pagecast contacts list | export | bulk | tags`: a Page's contacts as the API lists them.

The same filter (`ContactFilter`, `services.contact_filter`), sorts, pages and total as
`GET /api/pages/{id}/contacts`; `--json` is the API's body, `export` the API's CSV (the
importer's columns), streamed a batch at a time to stdout or `--output`. `bulk` is
`POST /api/pages/{id}/contacts/bulk` (`services.contact_bulk`), `tags` is
`GET /api/pages/{id}/tags`.
"""

from __future__ import annotations

import re
import sys
from operator import itemgetter
from pathlib import Path
from typing import Any

import typer

from pagecast.cli.base import cli_actor, contacts_app, fail, id_option, run
from pagecast.cli.output import json_option, print_json, print_table

__all__ = ["contacts_bulk", "contacts_export", "contacts_list", "contacts_tags"]

_COLUMNS = ("ID", "PSID", "NAME", "TAGS", "WINDOW", "LAST MESSAGE", "FLAGS")
_OPTIONS = {  # a ContactFilter field -> the option that sets it, for error messages
    "tags_any": "--tag",
    "tags_all": "--all-tags",
    "tags_none": "--no-tag",
    "window": "--window",
    "inbound_from": "--inbound-from",
    "inbound_to": "--inbound-to",
    "q": "--search",
    "timezone": "--timezone",
}


def _names(values: list[str]) -> list[str]:
    return [n.strip() for v in values for n in v.split(",") if n.strip()]


def _filter(options: dict[str, Any]) -> Any:
    """The options as a `ContactFilter`; a bad value ends the command naming its option."""
    from pydantic import ValidationError

    from pagecast.contact_filter_schema import ContactFilter
    from pagecast.errors import in_words

    data = {k: v for k, v in options.items() if v not in (None, "", [])}
    for name in ("tags_any", "tags_all", "tags_none"):
        if name in data:
            data[name] = _names(data[name])
    try:
        return ContactFilter.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else ""
        words = in_words(error)
        for name, option in _OPTIONS.items():  # a rule across fields names fields in words
            words = re.sub(rf"\b{name}\b", option, words)
        fail(f"{_OPTIONS.get(field, field)}: {words}" if field else words)


# Options shared by `list` and `export`: each is a filter of the list.
_TAG = typer.Option([], "--tag", help="Has any of these tags (repeat, or separate with commas).")
_ALL = typer.Option([], "--all-tags", help="Has every one of these tags.")
_NONE = typer.Option([], "--no-tag", help="Has none of these tags.")
_WINDOW = typer.Option(None, "--window", help="The 24-hour window now: inside, outside, unknown.")
_OPTED = typer.Option(None, "--opted-out/--not-opted-out", help="Opted out, or not.")
_GONE = typer.Option(None, "--unreachable/--reachable", help="Unreachable, or not.")
_TESTER = typer.Option(None, "--tester/--not-tester", help="A tester of the Page, or not.")
_FROM = typer.Option(None, "--inbound-from", help="Last wrote on or after (2026-03-01 or a time).")
_TO = typer.Option(None, "--inbound-to", help="Last wrote on or before (a date: all that day).")
_SEARCH = typer.Option(None, "--search", "-q", help="Part of the name, or the exact PSID.")
_ZONE = typer.Option(None, "--timezone", help="The contact's IANA time zone.")


def _options(**given: Any) -> dict[str, Any]:
    names = {"tag": "tags_any", "all_tags": "tags_all", "no_tag": "tags_none", "search": "q"}
    return {names.get(k, k): v for k, v in given.items()}


def _row(contact: Any, item: dict[str, Any]) -> list[str]:
    name = " ".join(n for n in (contact.first_name, contact.last_name) if n)
    flags = [f for f in ("opted_out", "unreachable") if item[f"{f}_at"]]
    if contact.is_tester:
        flags.append("tester")
    seen = contact.last_inbound_at.strftime("%Y-%m-%d %H:%M") if contact.last_inbound_at else ""
    return [
        str(contact.id),
        contact.psid,
        name,
        ",".join(item["tags"]),
        item["window"],
        seen,
        ",".join(flags),
    ]


@contacts_app.command("list")
def contacts_list(
    page: int = id_option("--page", "Page id (see `pagecast pages list`)."),
    tag: list[str] = _TAG,
    all_tags: list[str] = _ALL,
    no_tag: list[str] = _NONE,
    window: str | None = _WINDOW,
    opted_out: bool | None = _OPTED,
    unreachable: bool | None = _GONE,
    is_tester: bool | None = _TESTER,
    inbound_from: str | None = _FROM,
    inbound_to: str | None = _TO,
    search: str | None = _SEARCH,
    timezone: str | None = _ZONE,
    sort: str = typer.Option(
        "id", "--sort", help="id, name, last_inbound or created; -x: descending."
    ),
    limit: int = typer.Option(50, "--limit", min=1, max=500, help="Rows per page (1-500)."),
    cursor: str | None = typer.Option(None, "--cursor", help="The page after a previous one."),
    as_json: bool = json_option(),
) -> None:
    """List a Page's contacts matching the filters, with how many match in all."""
    from pagecast.models import utcnow
    from pagecast.services import contact_list
    from pagecast.web import render

    f = _filter(
        _options(
            tag=tag,
            all_tags=all_tags,
            no_tag=no_tag,
            window=window,
            opted_out=opted_out,
            unreachable=unreachable,
            is_tester=is_tester,
            inbound_from=inbound_from,
            inbound_to=inbound_to,
            search=search,
            timezone=timezone,
        )
    )

    async def fetch(ctx: Any) -> Any:
        order = contact_list.parse_sort(sort)
        now = utcnow()
        async with ctx.db.transaction() as session:
            found = await contact_list.page(
                session, page, f, now=now, sort=order, cursor=cursor, limit=limit
            )
            total = await contact_list.total(session, page, f, now=now)
            return found, total, [render.contact(c) for c in found.items]

    found, total, items = run(fetch)
    if as_json:
        body = {
            "items": items,
            "total": total,
            "next_cursor": found.next_cursor,
            "prev_cursor": found.prev_cursor,
        }
        print_json(body)  # the API's page: its items, the total and the cursors
        return
    rows = [_row(c, i) for c, i in zip(found.items, items, strict=True)]
    print_table(
        rows, [(title, itemgetter(n)) for n, title in enumerate(_COLUMNS)], empty="No contacts."
    )
    if not rows:
        return
    typer.echo(f"{total:,} contact{'' if total == 1 else 's'} match.", err=True)
    if found.next_cursor is not None:
        typer.echo(f"More: add --cursor {found.next_cursor}", err=True)


@contacts_app.command("export")
def contacts_export(
    page: int = id_option("--page", "Page id (see `pagecast pages list`)."),
    tag: list[str] = _TAG,
    all_tags: list[str] = _ALL,
    no_tag: list[str] = _NONE,
    window: str | None = _WINDOW,
    opted_out: bool | None = _OPTED,
    unreachable: bool | None = _GONE,
    is_tester: bool | None = _TESTER,
    inbound_from: str | None = _FROM,
    inbound_to: str | None = _TO,
    search: str | None = _SEARCH,
    timezone: str | None = _ZONE,
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write the CSV here (default: standard output)."
    ),
) -> None:
    """Export a Page's contacts matching the filters as CSV that `contacts import` reads
    back (psid, first_name, last_name, tags, last_inbound_at, timezone)."""
    from pagecast.models import utcnow
    from pagecast.services import pages
    from pagecast.web import render

    f = _filter(
        _options(
            tag=tag,
            all_tags=all_tags,
            no_tag=no_tag,
            window=window,
            opted_out=opted_out,
            unreachable=unreachable,
            is_tester=is_tester,
            inbound_from=inbound_from,
            inbound_to=inbound_to,
            search=search,
            timezone=timezone,
        )
    )
    if output is not None and output.parent and not output.parent.is_dir():
        fail(f"--output: the folder {str(output.parent)!r} does not exist; create it first.")

    async def write(ctx: Any) -> None:
        async with ctx.db.reading() as session:
            await pages.get(session, page)  # a wrong Page is an error, not an empty file
        target = output.open("w", newline="", encoding="utf-8") if output else sys.stdout
        try:
            async for text in render.contacts_csv(ctx.db, page, f, utcnow()):
                target.write(text)
        finally:
            if output:
                target.close()

    run(write)
    if output is not None:
        typer.echo(f"Exported to {output}.", err=True)


_ACTIONS = {"tag": "tag", "untag": "untag", "opt-out": "opt_out"}
_DONE = {"tag": "tagged", "untag": "untagged", "opt_out": "opted out"}


@contacts_app.command("bulk")
def contacts_bulk(
    action: str = typer.Argument(..., help="tag, untag or opt-out."),
    page: int = id_option("--page", "Page id (see `pagecast pages list`)."),
    tag: str | None = typer.Option(None, "--tag", help="The tag to add or remove (tag, untag)."),
    psid: list[str] = typer.Option(
        [], "--psid", help="A chosen contact's PSID; repeat, or separate with commas."
    ),
    every: bool = typer.Option(
        False, "--all", help="Every contact matching the filters (with none: the whole Page)."
    ),
    has_tag: list[str] = typer.Option(
        [], "--has-tag", help="Has any of these tags (`contacts list --tag`)."
    ),
    all_tags: list[str] = _ALL,
    no_tag: list[str] = _NONE,
    window: str | None = _WINDOW,
    opted_out: bool | None = _OPTED,
    unreachable: bool | None = _GONE,
    is_tester: bool | None = _TESTER,
    inbound_from: str | None = _FROM,
    inbound_to: str | None = _TO,
    search: str | None = _SEARCH,
    timezone: str | None = _ZONE,
    as_json: bool = json_option(),
) -> None:
    """Tag, untag or opt out chosen contacts (--psid), or every contact matching the filters
    of `contacts list` (--all alone: the whole Page), in batches of 1,000."""
    from pydantic import ValidationError

    from pagecast.contact_filter_schema import ContactBulk
    from pagecast.errors import InvalidInput, in_words
    from pagecast.models import utcnow
    from pagecast.services import contact_bulk, contacts

    if action not in _ACTIONS:
        fail(f"ACTION: {action!r} is not a bulk action; use tag, untag or opt-out.")
    given = _options(
        tag=has_tag,
        all_tags=all_tags,
        no_tag=no_tag,
        window=window,
        opted_out=opted_out,
        unreachable=unreachable,
        is_tester=is_tester,
        inbound_from=inbound_from,
        inbound_to=inbound_to,
        search=search,
        timezone=timezone,
    )
    filtered = any(v not in (None, "", []) for v in given.values())
    psids = _names(psid)
    if psids and (filtered or every):
        fail("--psid chooses the contacts itself; leave out --all and the filters, or --psid.")
    if not (psids or filtered or every):
        # Never the whole Page by accident: it has to be asked for with --all.
        fail(
            "choose the contacts: --psid P (repeat), filters as in `contacts list` "
            "(--has-tag, --window, ...), or --all for every contact of the Page."
        )
    f = None if psids else _filter(given)

    async def apply(ctx: Any) -> int:
        ids = None
        if psids:
            async with ctx.db.reading() as session:
                ids = await contacts.ids_of(session, page, psids)
        try:
            body = ContactBulk.model_validate(
                {"action": _ACTIONS[action], "tag": tag, "ids": ids, "filter": f}
            )
        except ValidationError as exc:  # the API's rules, worded with this command's options
            error = exc.errors()[0]
            field, words = str(error["loc"][0]) if error["loc"] else "", in_words(error)
            if not field and ": " in words:  # a rule across fields names its field first
                field, words = words.split(": ", 1)
            option = {"tag": "--tag", "ids": "--psid"}.get(field, field)
            raise InvalidInput(f"{option}: {words}" if option else words) from None
        return await contact_bulk.apply(ctx.db, cli_actor(), page, body, utcnow())

    changed = run(apply)
    if as_json:
        print_json({"changed": changed})  # the API's body
        return
    done = _DONE[_ACTIONS[action]] + (f" {tag!r}" if tag and action != "opt-out" else "")
    typer.echo(f"{changed:,} contact{'' if changed == 1 else 's'} {done}.")


@contacts_app.command("tags")
def contacts_tags(
    page: int = id_option("--page", "Page id (see `pagecast pages list`)."),
    prefix: str | None = typer.Option(None, "--prefix", "-q", help="The start of the name."),
    limit: int = typer.Option(20, "--limit", min=1, max=200, help="How many tags (1-200)."),
    as_json: bool = json_option(),
) -> None:
    """A Page's tags with how many of its contacts have each, the most used first."""
    from pagecast.services import contact_list

    async def fetch(ctx: Any) -> list[tuple[str, int]]:
        async with ctx.db.reading() as session:
            return await contact_list.tag_counts(
                session, page, prefix=(prefix or "").strip() or None, limit=limit
            )

    print_table(
        [{"name": name, "contacts": n} for name, n in run(fetch)],
        [("TAG", itemgetter("name")), ("CONTACTS", itemgetter("contacts"))],
        empty="No tags.",
        as_json=as_json,
    )
