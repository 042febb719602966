"""`pagecast segments list | create | delete` (issue 21): a Page's saved contact filters,
on the same services as the API (`GET/POST /api/pages/{id}/segments`) and the dashboard."""

from __future__ import annotations

import json
from typing import Any

import typer

from pagecast.cli.base import app, cli_actor, fail, id_argument, id_option, run, validation_line
from pagecast.cli.output import json_option, print_json, print_table

segments_app = typer.Typer(help="Segments: a Page's saved contact filters.", no_args_is_help=True)
app.add_typer(segments_app, name="segments")


def _names(value: str | None) -> list[str]:
    return [n.strip() for n in (value or "").split(",") if n.strip()]


@segments_app.command("list")
def segments_list(
    page: int = id_option("--page", "Page id (see `pagecast pages list`)."),
    as_json: bool = json_option(),
) -> None:
    """List the Page's segments by name, with how many contacts each matches now."""
    from pagecast.services import segments
    from pagecast.web import render

    async def fetch(ctx: Any) -> Any:
        async with ctx.db.reading() as session:
            rows = await segments.list_page(session, page)
            return [render.segment(s, await segments.count(session, s)) for s in rows]

    print_table(
        run(fetch),
        [
            ("ID", lambda s: s["id"]),
            ("CONTACTS", lambda s: f"{s['count']:,}"),
            ("NAME", lambda s: s["name"]),
            ("FILTER", lambda s: json.dumps(s["filter"])),
        ],
        empty="No segments.",
        as_json=as_json,
    )


@segments_app.command("create")
def segments_create(
    page: int = id_option("--page", "Page id (see `pagecast pages list`)."),
    name: str = typer.Option(..., "--name", help="The segment's name (unique on the Page)."),
    tags_any: str | None = typer.Option(None, "--tags-any", help="Has any of these tags (a,b)."),
    tags_all: str | None = typer.Option(None, "--tags-all", help="Has all of these tags."),
    tags_none: str | None = typer.Option(None, "--tags-none", help="Has none of these tags."),
    window: str | None = typer.Option(
        None, "--window", help="The 24-hour window now: inside, outside or unknown."
    ),
    search: str | None = typer.Option(None, "--search", help="Part of a name, or a PSID."),
    filter_json: str | None = typer.Option(
        None,
        "--filter",
        help='The whole filter as JSON, as the API takes it: \'{"tags_all": ["vip"], '
        '"opted_out": false}\'. The options above are added to it.',
    ),
    as_json: bool = json_option(),
) -> None:
    """Save a contact filter of the Page under a name."""
    from pydantic import ValidationError

    from pagecast.segment_schema import SegmentCreate
    from pagecast.services import segments
    from pagecast.web import render

    try:
        chosen = json.loads(filter_json) if filter_json else {}
    except json.JSONDecodeError as exc:
        fail(f"--filter: not JSON ({exc.msg} at character {exc.pos}); give an object")
    if not isinstance(chosen, dict):
        fail('--filter: give a JSON object, e.g. \'{"tags_any": ["vip"]}\'')
    for key, names in (("tags_any", tags_any), ("tags_all", tags_all), ("tags_none", tags_none)):
        if names is not None:  # added to --filter's list; anything else there is refused below
            given = chosen.get(key, [])
            chosen[key] = (given if isinstance(given, list) else [given]) + _names(names)
    if window is not None:
        chosen["window"] = window
    if search is not None:
        chosen["q"] = search
    try:
        data = SegmentCreate.model_validate({"name": name, "filter": chosen})
    except ValidationError as exc:
        fail(validation_line(exc))

    async def create(ctx: Any) -> Any:
        async with ctx.db.transaction() as session:
            segment = await segments.create(session, cli_actor(), page, data)
            return render.segment(segment, await segments.count(session, segment))

    item = run(create)
    if as_json:
        print_json(item)
        return
    typer.echo(
        f"Segment {item['id']} ({item['name']}) of Page {page}: {item['count']:,} contacts now."
    )


@segments_app.command("delete")
def segments_delete(
    segment_id: int = id_argument("Segment id (see `pagecast segments list`)."),
) -> None:
    """Delete a segment; refused while a draft or scheduled campaign, or a series, targets it."""
    from pagecast.services import segments

    async def delete(ctx: Any) -> None:
        async with ctx.db.transaction() as session:
            await segments.delete(session, cli_actor(), segment_id)

    run(delete)
    typer.echo(f"Segment {segment_id} deleted.")
