"""The Page settings' quiet hours (issue 20): the form's two times as `PageUpdate`'s
`quiet_hours` (both empty: none); services/due_times.py checks them, naming the field."""

from __future__ import annotations

from typing import Any

from starlette.datastructures import FormData

__all__ = ["changes"]


def changes(form: FormData) -> dict[str, Any]:
    """`{"quiet_hours": …}` when the form is the quiet-hours one, else nothing."""
    if not form.get("quiet_hours_form"):
        return {}
    start = str(form.get("quiet_start", "")).strip()
    end = str(form.get("quiet_end", "")).strip()
    return {"quiet_hours": {"start": start, "end": end} if start or end else None}
