"""The composer's audience fields (issue 21): everyone, tags (any or all of), chosen people
by PSID, a saved segment, or the contacts list's filter.

"New campaign to these people" opens the composer with the audience filled, through query
parameters of `GET /campaigns/new` (docs/dashboard.md, "New campaign to these people"):
`audience=filter` with the contacts list's filter parameters (`q`, `tag`, `tags_any`,
`tags_all`, `tags_none`, `window`, `opted_out`, `unreachable`, `is_tester`, `inbound_from`,
`inbound_to`, `timezone`: those of `GET /api/pages/{id}/contacts`), `audience=segment` with
`segment_id`, or `psids` (comma-separated). The draft is only created when the form is saved.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from starlette.datastructures import FormData, QueryParams

from pagecast.contact_filter_schema import ContactFilter
from pagecast.schemas import parse_id
from pagecast.services import segments
from pagecast.web.dashboard import message_form

__all__ = [
    "FILTER_KEYS",
    "describe",
    "filter_from",
    "target_from",
    "values_from_query",
    "values_of",
]

FILTER_KEYS = (
    "q",
    "tag",
    "tags_any",
    "tags_all",
    "tags_none",
    "window",
    "opted_out",
    "unreachable",
    "is_tester",
    "inbound_from",
    "inbound_to",
    "timezone",
)
_LISTS = ("tags_any", "tags_all", "tags_none")
_FLAGS = {"yes": True, "no": False, "true": True, "false": False}


def target_from(get: Callable[[str], str]) -> dict[str, Any]:
    """The audience fields of the form as the API's `audience`."""
    kind = get("audience_type") or "all"
    if kind == "tags":
        target = {
            "type": "tags",
            "include": message_form.split(get("include")),
            "exclude": message_form.split(get("exclude")),
        }
        return target | ({"match": "all"} if get("tags_match") == "all" else {})
    if kind == "contacts":
        # PSIDs, pasted one per line or comma-separated; the audience's validation names
        # any that is not one, and Save any that is not a contact of the Page.
        return {"type": "contacts", "psids": message_form.split(get("psids"))}
    if kind == "segment":
        raw = get("segment_id")
        return {"type": "segment", "segment_id": parse_id(raw) or raw}
    if kind == "filter":
        text = get("filter") or "{}"
        try:
            chosen: Any = json.loads(text)
        except ValueError:
            chosen = text  # passed on, so the audience's validation names the field
        return {"type": "filter", "filter": chosen}
    return {"type": "all"}


def values_of(target: dict[str, Any]) -> dict[str, Any]:
    """A stored audience as the form's values."""
    chosen = target.get("filter") if target.get("type") == "filter" else None
    return {
        "audience_type": target["type"],
        "include": ", ".join(target.get("include", [])),
        "exclude": ", ".join(target.get("exclude", [])),
        "tags_match": target.get("match", "any"),
        "psids": "\n".join(target.get("psids") or []),
        "segment_id": target.get("segment_id", ""),
        "filter": json.dumps(chosen) if chosen is not None else "",
    }


def values_from_query(query: QueryParams) -> dict[str, Any]:
    """The composer's values for "New campaign to these people" (module docstring); a value
    the filter refuses is shown as the audience's error when the form is saved."""
    values: dict[str, Any] = {}
    if page_id := parse_id(query.get("page_id")):
        values["page_id"] = page_id
    if query.get("psids"):
        psids = message_form.split(",".join(query.getlist("psids")))
        return values | {"audience_type": "contacts", "psids": "\n".join(psids)}
    if query.get("audience") == "segment":
        return values | {"audience_type": "segment", "segment_id": query.get("segment_id", "")}
    if query.get("audience") != "filter":
        return values
    chosen = filter_from(query)
    return values | {"audience_type": "filter", "filter": json.dumps(chosen)}


def filter_from(params: QueryParams | FormData) -> dict[str, Any]:
    """The contacts list's filter parameters (`FILTER_KEYS`; yes/no flags) as a
    `ContactFilter`'s fields, not checked yet: empty ones left out, `tag` as `tags_any`."""
    chosen: dict[str, Any] = {}
    for key in FILTER_KEYS:
        raw = [v.strip() for v in params.getlist(key) if isinstance(v, str) and v.strip()]
        if not raw:
            continue
        if key in _LISTS or key == "tag":
            names = [n.strip() for v in raw for n in v.split(",") if n.strip()]
            field = "tags_any" if key == "tag" else key
            chosen[field] = chosen.get(field, []) + names
        elif key in ("opted_out", "unreachable", "is_tester"):
            chosen[key] = _FLAGS.get(raw[0].lower(), raw[0])
        else:
            chosen[key] = raw[0]
    return chosen


def describe(text: str) -> str:
    """A filter field's JSON in words, for the composer ("tags_any: vip; window: inside")."""
    try:
        chosen = segments.stored(ContactFilter.model_validate_json(text or "{}"))
    except ValueError:
        return "a filter that cannot be read; open the contacts list and start again"
    if not chosen:
        return "every contact of the Page"
    return "; ".join(
        f"{key}: {', '.join(value) if isinstance(value, list) else value}"
        for key, value in chosen.items()
    )
