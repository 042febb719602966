"""Issue 20 on the command line: a Page's quiet hours, a contact's zone, a campaign's local send
time and window, and who waits for their local time; bad input names the field."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from test_cli import data_dir, migrated_dir, run

__all__ = ["data_dir", "migrated_dir"]  # fixtures used here

NOW = "2026-01-01 00:00:00.000000"


def _seed(data: Path) -> None:
    """A Page, a contact and a draft campaign, written straight into the SQLite database."""
    with sqlite3.connect(data / "pagecast.db") as db:
        db.execute(
            "INSERT INTO pages (id, fb_page_id, name, access_token_encrypted, status, send_rate, "
            "timezone, created_at, updated_at) VALUES (1, '555', 'Tea', 'x', 'active', 10, 'UTC', ?, ?)",
            (NOW, NOW),
        )
        db.execute(
            "INSERT INTO contacts (id, page_id, psid, created_at, updated_at) "
            "VALUES (1, 1, '42', ?, ?)",
            (NOW, NOW),
        )
        db.execute(
            "INSERT INTO campaigns (id, name, page_id, content, messaging_type, audience, "
            "priority, status, created_at, updated_at) VALUES (1, 'Tea', 1, '{\"text\": \"hi\"}', "
            "'UPDATE', '{\"type\": \"all\"}', 'normal', 'draft', ?, ?)",
            (NOW, NOW),
        )


def test_quiet_hours_zones_and_timing_from_the_command_line(data_dir: Path) -> None:
    _seed(data_dir)
    quiet = run(data_dir, "pages", "quiet-hours", "1", "21:00", "08:00")
    assert quiet.returncode == 0, quiet.stderr
    assert "quiet hours: 21:00–08:00" in quiet.stdout
    bad = run(data_dir, "pages", "quiet-hours", "1", "9pm", "08:00")
    assert bad.returncode == 1 and bad.stderr.startswith("Error: quiet_hours.start: "), bad.stderr
    off = run(data_dir, "pages", "quiet-hours", "1", "--off")
    assert off.returncode == 0 and "quiet hours: none" in off.stdout

    zone = run(data_dir, "contacts", "timezone", "1", "asia/manila")
    assert zone.returncode == 0 and "is in Asia/Manila" in zone.stdout, zone.stderr
    unknown = run(data_dir, "contacts", "timezone", "1", "Manila")
    assert unknown.returncode == 1 and "timezone: " in unknown.stderr
    assert 'did you mean "Asia/Manila"' in unknown.stderr

    at = (datetime.now(UTC) + timedelta(days=3)).strftime("%Y-%m-%dT10:00")
    timing = run(
        data_dir,
        "campaigns",
        "timing",
        "1",
        "--local-send-at",
        at,
        "--window-days",
        "mon,tue,wed,thu,fri",
        "--window-hours",
        "09:00-18:00",
    )
    assert timing.returncode == 0, timing.stderr
    assert f"sends {at.replace('T', ' ')} local, window mon,tue,wed,thu,fri 09:00-18:00" in (
        timing.stdout
    )
    late = run(
        data_dir,
        "campaigns",
        "timing",
        "1",
        "--window-days",
        "mon",
        "--window-hours",
        "18:00-09:00",
    )
    assert late.returncode == 1 and late.stderr.startswith("Error: send_window.end: "), late.stderr
    offset = run(data_dir, "campaigns", "timing", "1", "--local-send-at", at + "+08:00")
    assert (
        offset.returncode == 1 and "local_send_at: " in offset.stderr and "offset" in offset.stderr
    )
    waiting = run(data_dir, "campaigns", "waiting", "1")
    assert waiting.returncode == 0 and "nobody waits" in waiting.stdout, waiting.stderr
