"""The `pagecast` command line: thin commands that parse, call one function and render.

`pagecast.cli.base` holds the Typer apps and the shared runner; the commands live in
`processes` (serve, web, worker, simulator), `admin` (db, users, tokens, config), `data`
(pages, contacts, campaigns), `contacts` (contacts list and export), `series` (recurring
series), `segments` (saved contact filters), `deliveries` (campaigns deliveries), `experiments` (campaigns results, campaigns winner) and `page_setup` (pages
sync, pages webhook).
"""

from __future__ import annotations

from pagecast.cli import (  # noqa: F401  (they register their commands)
    admin,
    contacts,
    data,
    deliveries,
    experiments,
    local_time,
    page_setup,
    processes,
    segments,
    series,
)
from pagecast.cli.base import app

__all__ = ["app", "main"]


def main() -> None:
    app()
