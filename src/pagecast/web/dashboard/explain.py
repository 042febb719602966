"""Plain-language meaning and next step for delivery outcomes, Graph error codes and Page
states (the prose of docs/graph-errors.md, for the people who run campaigns)."""

from __future__ import annotations

__all__ = ["delivery_error", "page_status"]

# (code, subcode) first, then code alone, then the error kind, then the delivery reason.
_BY_CODE: dict[tuple[int, int | None], tuple[str, str]] = {
    (190, None): (
        "The Page's access token expired or was revoked.",
        "Reconnect the Page with a new Page access token on the Pages screen, then resume.",
    ),
    (10, None): (
        "The app lacks the permission to message for this Page.",
        "Grant pages_messaging to the app and reconnect the Page.",
    ),
    (200, None): (
        "Permission error: the token cannot send for this Page.",
        "Reconnect the Page with a token of someone who manages it.",
    ),
    (368, None): (
        "Meta restricted the Page for a policy violation.",
        "Check the Page's quality in Meta Business Suite; sending is stopped until lifted.",
    ),
    (551, None): (
        "This person cannot receive messages from the Page (blocked it or unavailable).",
        "Nothing: they are suppressed from later campaigns.",
    ),
    (10, 2018278): (
        "The 24-hour messaging window was closed when we tried.",
        "They get the next campaign after they message the Page again; or use an allowed tag.",
    ),
    (613, None): (
        "Facebook's rate limit for the Page was reached.",
        "Nothing: Pagecast slowed the Page down and will retry. Lower the Page's rate if frequent.",
    ),
    (100, None): (
        "Facebook refused the message as invalid.",
        "Check the message content (URLs, buttons) and duplicate the campaign after fixing it.",
    ),
}
_BY_KIND: dict[str, tuple[str, str]] = {
    "retry": (
        "A temporary Facebook error; retries ran out.",
        "Use “Retry failed” to send them again.",
    ),
    "throttle": ("Rate limited by Facebook.", "Retry failed later, or lower the send rate."),
    "stop_page": (
        "The Page cannot send (token, permission or restriction).",
        "Fix the Page on the Pages screen, then resume or retry failed.",
    ),
    "recipient_unreachable": (
        "The person cannot be reached any more.",
        "Nothing: they are excluded from later campaigns.",
    ),
    "outside_window": (
        "Outside the messaging window at send time.",
        "Nothing now: they are eligible again after they message the Page.",
    ),
    "bad_request": (
        "Facebook rejected the request as malformed.",
        "Fix the content; repeated errors stop the campaign (circuit breaker).",
    ),
    "ambiguous": (
        "No answer after the request was sent: it may have arrived.",
        "Wait: echoes from Facebook confirm it; it is never resent blindly.",
    ),
}
_BY_REASON: dict[str, tuple[str, str]] = {
    "retries_exhausted": _BY_KIND["retry"],
    "outside_window": _BY_KIND["outside_window"],
    "window_unknown": (
        "We never saw a message from this person, so the window is unknown.",
        "Nothing: sync or import their last message time.",
    ),
    "opted_out": ("The person opted out.", "Nothing: opted-out people are never messaged."),
    "unreachable": _BY_KIND["recipient_unreachable"],
    "ambiguous": _BY_KIND["ambiguous"],
}
_UNKNOWN = ("An error Pagecast has no explanation for yet.", "See the message and fbtrace id.")


def delivery_error(
    code: int | None, subcode: int | None, kind: str | None, reason: str | None
) -> tuple[str, str]:
    """(what it means, what to do) for one error group."""
    if code is not None:
        for key in ((code, subcode), (code, None)):
            if key in _BY_CODE:
                return _BY_CODE[key]
    if kind and kind in _BY_KIND:
        return _BY_KIND[kind]
    if reason and reason in _BY_REASON:
        return _BY_REASON[reason]
    return _UNKNOWN


_PAGE: dict[str, tuple[str, str]] = {
    "active": ("Connected and sending.", ""),
    "token_invalid": (
        "Page token expired or revoked.",
        "Reconnect the Page: paste a new Page access token below.",
    ),
    "restricted": (
        "Meta restricted the Page.",
        "Check the Page in Meta Business Suite. When Facebook lifts a policy block it tells "
        "Pagecast, and the campaigns the block paused resume; after a restriction that a send "
        "error showed, reconnect the Page once it is lifted.",
    ),
    "disconnected": ("Disconnected: its token was erased.", "Reconnect it to send again."),
}


def page_status(status: str) -> tuple[str, str]:
    return _PAGE.get(status, (status, ""))
