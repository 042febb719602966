"""The `pagecast` command line: thin commands that parse, call one function and render.

`pagecast.cli.base` holds the Typer apps and the shared runner; the commands live in
`processes` (serve, web, worker, simulator), `admin` (db, users, tokens, config, queue),
`data` (pages, contacts), `campaigns` (campaigns, on this machine or remote: `backend`),
`contacts` (contacts list, export, bulk and tags), `series` (recurring series), `segments` (saved contact
filters), `deliveries` (campaigns deliveries), `experiments` (campaigns results, campaigns
winner), `page_setup` (pages sync, pages webhook), `reports` (campaigns report, pages
overview), `webhooks` (outbound webhook endpoints), `audit` (the audit log) and `approvals`
(campaigns approve|reject, pages approval-threshold, users can-approve).
"""

from __future__ import annotations

from pagecast.cli import (  # noqa: F401  (they register their commands)
    admin,
    approvals,
    audit,
    campaigns,
    contacts,
    data,
    deliveries,
    experiments,
    local_time,
    page_setup,
    processes,
    reports,
    segments,
    series,
    webhooks,
)
from pagecast.cli.base import app, main

__all__ = ["app", "main"]
