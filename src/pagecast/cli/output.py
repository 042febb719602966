"""How a read command prints what it read: one convention for every command.

- A list prints a header line (the column names, tab-separated), then one tab-separated line
  per row, so `cut -f` and a spreadsheet read it; an empty list prints one sentence instead
  ("No campaigns."), so an empty answer is never a blank screen.
- One object (`campaigns show`) prints `name<TAB>value` lines, or its own lines.
- `--json` prints the API's body for the same read (a list as a JSON array), so a script gets
  the same fields from the CLI, from `--url` and from the API.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import typer

__all__ = ["Column", "json_option", "print_json", "print_object", "print_table"]

Column = tuple[str, Callable[[Any], object]]
"""A column: its header and how to read its value from a row."""


def json_option() -> Any:
    """The `--json` flag of a read command."""
    return typer.Option(False, "--json", help="Print the API's JSON body instead of text.")


def print_json(body: object) -> None:
    typer.echo(json.dumps(body, indent=2, default=str, ensure_ascii=False))


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    # A tab or a line break inside a value would break the columns.
    return " ".join(str(value).split())


def print_table(
    rows: Sequence[Any],
    columns: Sequence[Column],
    *,
    empty: str,
    as_json: bool = False,
    body: Callable[[Any], object] | None = None,
) -> None:
    """Print `rows` under a header, `empty` when there are none, or their JSON with --json.

    `body` makes a row's JSON (the API's); without it a row is printed as it is (a dict).
    """
    if as_json:
        print_json([body(row) if body else row for row in rows])
        return
    if not rows:
        typer.echo(empty)
        return
    typer.echo("\t".join(title for title, _ in columns))
    for row in rows:
        typer.echo("\t".join(_cell(read(row)) for _, read in columns))


def print_object(
    item: Mapping[str, Any],
    *,
    as_json: bool = False,
    lines: Callable[[Mapping[str, Any]], Iterable[str]] | None = None,
) -> None:
    """Print one object: its JSON with --json, else `lines(item)` or `key<TAB>value` lines."""
    if as_json:
        print_json(item)
        return
    for line in lines(item) if lines else (f"{k}\t{_cell(v)}" for k, v in item.items()):
        typer.echo(line)
