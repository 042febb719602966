"""Facebook Login as an app meets it (docs/simulator.md, "Facebook Login"): the OAuth dialog,
the token endpoint, and what a user token grants (`/me/permissions`, `/me/accounts`,
`/debug_token`).

Nobody clicks in the simulator's dialog: it answers as the person chosen with
`POST /__sim/oauth` (`set_consent`). A code is single use, bound to the dialog's
`redirect_uri`, and good for ten minutes of sim time; the token endpoint turns it into a
short-lived user token, and `fb_exchange_token` turns that into a long-lived one. The Pages
listed by `/me/accounts` carry Page tokens the Send API accepts, with the permissions the
person granted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import string
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from pagecast.simulator.context import CallContext, GraphRequest, Outcome
from pagecast.simulator.conversations import paging_url
from pagecast.simulator.errors import GraphError, bad_param, cannot_parse_token, invalid_token
from pagecast.simulator.people import ControlError, page_of
from pagecast.simulator.reads import requested_fields
from pagecast.simulator.state import DEFAULT_USER_ID, AuthCode, Consent, SimState, Token

if TYPE_CHECKING:
    from pagecast.simulator.app import SimulatorApp

__all__ = [
    "ALWAYS_GRANTED",
    "CANCEL",
    "CODE_TTL",
    "LONG_LIVED_S",
    "SHORT_LIVED_S",
    "accounts",
    "debug_token",
    "login_route",
    "permissions",
    "set_consent",
]

CODE_TTL = 600.0  # a code is good for ten minutes
SHORT_LIVED_S = 3600  # "about an hour or two" (Facebook Login, access tokens)
LONG_LIVED_S = 60 * 86400  # "about 60 days"
ALWAYS_GRANTED = "public_profile"  # Facebook grants it with every login
CANCEL = "*"  # `decline: ["*"]`: the person cancels the dialog

_REDIRECT_MISMATCH = (
    "Error validating verification code. Please make sure your redirect_uri is identical "
    "to the one you used in the OAuth dialog request"
)
_URL_BLOCKED = (
    "This redirect failed because the redirect URI is not whitelisted in the app's Client "
    "OAuth Settings. Make sure Client and Web OAuth Login are on and add all your app domains "
    "as Valid OAuth Redirect URIs."
)
_TOKEN_CHARS = string.ascii_letters + string.digits
_CODE_CHARS = _TOKEN_CHARS + "-_"
_ACCOUNTS_LIMIT = 25
_ACCOUNTS_MAX_LIMIT = 100
_CONSENT_KEYS = ("user_token", "decline", "user_id", "pages")
_NODE_TYPES = {"PAGE": "Page", "APP": "Application"}

LoginHandler = Callable[[SimState, GraphRequest], Outcome]


def login_route(req: GraphRequest) -> LoginHandler | None:
    """The handler of a Login call that takes no access token (the dialog, the token
    endpoint), or None for every other call."""
    if req.segments == ("dialog", "oauth") and req.method == "GET":
        return dialog
    if req.segments == ("oauth", "access_token") and req.method in ("GET", "POST"):
        return access_token
    return None


# --------------------------------------------------------------------------- the dialog


def dialog(state: SimState, req: GraphRequest) -> Outcome:
    """`GET /{ver}/dialog/oauth`: consent as the chosen person and redirect with a code, or
    with `error=access_denied` when they cancel. A request the dialog cannot send back (wrong
    app, no redirect_uri) gets Facebook's error page instead, as in a browser."""
    if str(req.param("client_id") or "") != state.app.app_id:
        return _error_page(
            "Invalid App ID", "The provided app ID does not look like a valid app ID."
        )
    redirect_uri = str(req.param("redirect_uri") or "")
    target = urlsplit(redirect_uri)
    if target.scheme not in ("http", "https") or not target.netloc:
        return _error_page("URL Blocked", _URL_BLOCKED)
    response_type = str(req.param("response_type") or "code")
    if response_type != "code":
        return _error_page(
            "Unsupported response_type",
            f"The simulator's dialog answers response_type=code only, not {response_type!r}.",
        )
    consent = state.consent
    if consent is None:
        return _error_page(
            "Nobody is logged in",
            "Choose who consents in the simulator's dialog with POST /__sim/oauth first.",
        )
    passed_state = req.param("state")
    back: dict[str, str] = {} if passed_state is None else {"state": str(passed_state)}
    if CANCEL in consent.decline:
        # What Facebook sends back when the person cancels (Manually Build a Login Flow,
        # "Canceled Login").
        cancelled = {
            "error": "access_denied",
            "error_code": "200",
            "error_description": "Permissions error",
            "error_reason": "user_denied",
        }
        return _redirect(redirect_uri, {**cancelled, **back})
    requested = _scopes(req.param("scope"))
    granted = tuple(
        dict.fromkeys((ALWAYS_GRANTED, *(s for s in requested if s not in consent.decline)))
    )
    declined = tuple(s for s in requested if s in consent.decline and s != ALWAYS_GRANTED)
    pages = consent.pages if consent.pages is not None else tuple(state.pages)
    code = AuthCode(
        code="AQ" + _random(state, _CODE_CHARS, 118),
        redirect_uri=redirect_uri,
        issued_at=state.clock.now(),
        user_token=consent.user_token,
        user_id=consent.user_id,
        granted=granted,
        declined=declined,
        page_ids=pages,
    )
    state.codes[code.code] = code
    return _redirect(redirect_uri, {"code": code.code, **back})


def _scopes(raw: Any) -> tuple[str, ...]:
    # Facebook takes the scope list comma- or space-separated.
    text = str(raw or "").replace(",", " ")
    return tuple(dict.fromkeys(s for s in text.split() if s))


def _redirect(redirect_uri: str, params: dict[str, str]) -> Outcome:
    parts = urlsplit(redirect_uri)
    query = f"{parts.query}&{urlencode(params)}" if parts.query else urlencode(params)
    # Facebook appends an empty-ish fragment to every redirect of the dialog.
    location = urlunsplit((parts.scheme, parts.netloc, parts.path, query, "_=_"))
    return Outcome(
        302,
        None,
        headers=[("location", location)],
        raw=b"",
        content_type="text/html; charset=utf-8",
    )


def _error_page(title: str, message: str) -> Outcome:
    body = (
        f'<!DOCTYPE html><html lang="en"><head><title>{html.escape(title)}</title></head>'
        f"<body><h1>{html.escape(title)}</h1><p>{html.escape(message)}</p></body></html>"
    )
    return Outcome(400, None, raw=body.encode(), content_type="text/html; charset=utf-8")


# --------------------------------------------------------------------------- the token endpoint


def access_token(state: SimState, req: GraphRequest) -> Outcome:
    """`GET|POST /{ver}/oauth/access_token`: a code, a short-lived user token
    (`grant_type=fb_exchange_token`) or the app's credentials (`client_credentials`) for a
    token. The app is checked first (101, then 1), then what is exchanged."""
    _check_app(state, req)
    grant = str(req.param("grant_type") or "authorization_code")
    if grant == "authorization_code":
        body = _exchange_code(state, req)
    elif grant == "fb_exchange_token":
        body = _long_lived(state, req)
    elif grant == "client_credentials":
        body = {
            "access_token": f"{state.app.app_id}|{state.app.app_secret}",
            "token_type": "bearer",
        }
    else:
        raise GraphError(
            100,
            f"Invalid grant_type: '{grant}'. Supported types: authorization_code, "
            "client_credentials, fb_exchange_token",
        )
    return Outcome(200, body)


def _check_app(state: SimState, req: GraphRequest) -> None:
    client_id = req.param("client_id")
    if not client_id:
        raise GraphError(101, "Missing client_id parameter.")
    if str(client_id) != state.app.app_id:
        raise GraphError(101, "Error validating application. Invalid application ID.")
    secret, given = state.app.app_secret, req.param("client_secret")
    if not secret or not given or not hmac.compare_digest(str(given).encode(), secret.encode()):
        # Code 1 is otherwise "unknown error, retry" (HTTP 500); this one is a 400.
        raise GraphError(1, "Error validating client secret.", status=400, is_transient=False)


def _exchange_code(state: SimState, req: GraphRequest) -> dict[str, Any]:
    raw = req.param("code")
    if not raw:
        raise GraphError(100, "Missing authorization code")
    code = state.codes.get(str(raw))
    if code is None:
        raise GraphError(100, "Invalid verification code format.")
    if code.used:
        raise GraphError(100, "This authorization code has been used.", subcode=36009)
    now = state.clock.now()
    if now >= code.issued_at + CODE_TTL:
        raise GraphError(100, "This authorization code has expired.", subcode=36007)
    if str(req.param("redirect_uri") or "") != code.redirect_uri:
        raise GraphError(100, _REDIRECT_MISMATCH, subcode=36008)
    code.used = True  # only an exchange that succeeds uses the code
    token = Token(
        token=code.user_token,
        kind="USER",
        page_id=None,
        user_id=code.user_id,
        scopes=code.granted,
        declined=code.declined,
        page_ids=code.page_ids,
        expires_at=now + SHORT_LIVED_S,
    )
    state.tokens[token.token] = token
    return {"access_token": token.token, "token_type": "bearer", "expires_in": SHORT_LIVED_S}


def _long_lived(state: SimState, req: GraphRequest) -> dict[str, Any]:
    raw = req.param("fb_exchange_token")
    if not raw:
        raise GraphError(100, "Missing fb_exchange_token parameter")
    short = state.tokens.get(str(raw))
    if short is None:
        raise cannot_parse_token()
    if short.kind != "USER":
        raise GraphError(100, "fb_exchange_token must be a user access token")
    now = state.clock.now()
    if not short.valid:
        raise invalid_token(short.invalid_subcode or 467, app_id=state.app.app_id)
    if short.expires_at and short.expires_at < now:
        raise invalid_token(463, app_id=state.app.app_id, expired_at=short.expires_at, now=now)
    token = Token(
        token="EAAL" + _random(state, _TOKEN_CHARS, 180),
        kind="USER",
        page_id=None,
        user_id=short.user_id,
        scopes=short.scopes,
        tasks=short.tasks,
        declined=short.declined,
        page_ids=short.page_ids,
        expires_at=now + LONG_LIVED_S,
    )
    state.tokens[token.token] = token
    return {"access_token": token.token, "token_type": "bearer", "expires_in": LONG_LIVED_S}


def _random(state: SimState, alphabet: str, length: int) -> str:
    return "".join(state.rng("oauth").choices(alphabet, k=length))


# --------------------------------------------------------------------------- what a token grants


def _user_only(token: Token, edge: str) -> None:
    if token.kind not in ("USER", "SYSTEM_USER"):
        node = _NODE_TYPES.get(token.kind, "Page")
        raise bad_param(f"Tried accessing nonexisting field ({edge}) on node type ({node})")


def permissions(state: SimState, req: GraphRequest, ctx: CallContext) -> dict[str, Any]:
    """`GET /{ver}/me/permissions`: each permission the person granted or declined."""
    token = ctx.token
    assert token is not None
    _user_only(token, "permissions")
    data = [{"permission": p, "status": "granted"} for p in token.scopes]
    data += [
        {"permission": p, "status": "declined"} for p in token.declined if p not in token.scopes
    ]
    return {"data": data}


def accounts(state: SimState, req: GraphRequest, ctx: CallContext) -> dict[str, Any]:
    """`GET /{ver}/me/accounts`: the person's Pages with their Page tokens, `limit` (25,
    at most 100) a page, with cursor paging. Without `pages_show_list` the list is empty."""
    token = ctx.token
    assert token is not None
    _user_only(token, "accounts")
    ids = [p for p in token.page_ids if p in state.pages]
    if "pages_show_list" not in token.scopes:
        ids = []
    try:
        limit = int(req.param("limit") or _ACCOUNTS_LIMIT)
    except ValueError as exc:
        raise bad_param("Param limit must be an integer") from exc
    limit = max(1, min(limit, _ACCOUNTS_MAX_LIMIT))
    after, before = req.param("after"), req.param("before")
    if after:
        start = _position(ids, str(after)) + 1
        chosen = ids[start : start + limit]
    elif before:
        end = _position(ids, str(before))
        start = max(0, end - limit)
        chosen = ids[start:end]
    else:
        start = 0
        chosen = ids[:limit]
    fields = requested_fields(req, ("id", "name", "access_token", "tasks", "category"))
    data = []
    for page_id in chosen:
        values = {
            "id": page_id,
            "name": state.pages[page_id].name,
            "access_token": _page_token(state, token, page_id),
            "tasks": list(token.tasks),
            "category": "Business",
        }
        data.append({f: values[f] for f in fields if f in values})
    result: dict[str, Any] = {"data": data}
    if chosen:
        cursors = {"before": _cursor(chosen[0]), "after": _cursor(chosen[-1])}
        paging: dict[str, Any] = {"cursors": cursors}
        if start + len(chosen) < len(ids):
            paging["next"] = paging_url(req, "after", cursors["after"])
        if start > 0:
            paging["previous"] = paging_url(req, "before", cursors["before"])
        result["paging"] = paging
    return result


def _cursor(page_id: str) -> str:
    return base64.urlsafe_b64encode(page_id.encode()).decode()


def _position(ids: list[str], cursor: str) -> int:
    try:
        return ids.index(base64.urlsafe_b64decode(cursor.encode()).decode())
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_param("Invalid cursor") from exc


def _page_token(state: SimState, user: Token, page_id: str) -> str | None:
    """The Page token `/me/accounts` hands this person: the Page's own (the one
    `/__sim/pages` made) when they granted everything it carries, else a Page token with
    only the permissions they granted, so a declined `pages_messaging` fails sends (200)."""
    base = next(
        (t for t in state.tokens.values() if t.kind == "PAGE" and t.page_id == page_id and t.valid),
        None,
    )
    if base is None:
        return None
    if set(base.scopes) <= set(user.scopes):
        return base.token
    scopes = tuple(s for s in base.scopes if s in user.scopes)
    key = f"{base.token}|{user.user_id}|{','.join(scopes)}".encode()
    derived = "EAAP" + hashlib.sha256(key).hexdigest()[:48]
    if derived not in state.tokens:
        state.tokens[derived] = Token(
            token=derived,
            kind="PAGE",
            page_id=page_id,
            user_id=user.user_id,
            scopes=scopes,
            tasks=user.tasks,
        )
    return derived


def debug_token(state: SimState, req: GraphRequest, ctx: CallContext) -> dict[str, Any]:
    """`GET /{ver}/debug_token?input_token=`: what a token is, for whom, until when, with
    which permissions (`scopes`, and per Page in `granular_scopes`)."""
    raw = req.param("input_token")
    if not raw:
        raise bad_param("The parameter input_token is required")
    token = state.tokens.get(str(raw))
    if token is None:
        return {
            "data": {
                "error": {"code": 190, "message": "Invalid OAuth access token."},
                "is_valid": False,
                "scopes": [],
            }
        }
    now = state.clock.now()
    valid = token.valid and not (token.expires_at and token.expires_at < now)
    targets = [token.page_id] if token.page_id else list(token.page_ids)
    granular = [
        {"scope": s, **({"target_ids": targets} if s.startswith("pages_") and targets else {})}
        for s in token.scopes
        if s != ALWAYS_GRANTED
    ]
    data: dict[str, Any] = {
        "app_id": state.app.app_id,
        "type": token.kind,
        "application": state.app.name,
        "data_access_expires_at": int(now + 90 * 86400),
        "expires_at": int(token.expires_at),
        "is_valid": valid,
        "scopes": list(token.scopes),
        "granular_scopes": granular,
        "user_id": token.user_id,
    }
    if token.page_id:
        data["profile_id"] = token.page_id
    if not valid:
        data["error"] = {
            "code": 190,
            "subcode": token.invalid_subcode or 463,
            "message": "Error validating access token.",
        }
    return {"data": data}


# --------------------------------------------------------------------------- control plane


async def set_consent(
    app: SimulatorApp, query: dict[str, str], payload: Any
) -> tuple[int, dict[str, Any]]:
    """`POST /__sim/oauth`: who answers the dialog from now on, and what they decline."""
    if not isinstance(payload, dict):
        raise ControlError("The body must be a JSON object.")
    unknown = sorted(set(payload) - set(_CONSENT_KEYS))
    if unknown:
        raise ControlError(f"Unknown field {unknown[0]!r}; known: {', '.join(_CONSENT_KEYS)}.")
    user_token = payload.get("user_token")
    if not isinstance(user_token, str) or not user_token:
        raise ControlError(
            '"user_token" must be a non-empty string: the user token the code exchange answers.'
        )
    decline = payload.get("decline", [])
    if not isinstance(decline, list) or not all(isinstance(p, str) and p for p in decline):
        raise ControlError(
            '"decline" must be a list of permission names, or ["*"] to cancel the dialog.'
        )
    user_id = payload.get("user_id", DEFAULT_USER_ID)
    if isinstance(user_id, bool) or not isinstance(user_id, str | int) or str(user_id) == "":
        raise ControlError('"user_id" must be a non-empty string or a number.')
    pages = payload.get("pages")
    if pages is not None:
        if not isinstance(pages, list) or not all(isinstance(p, str | int) for p in pages):
            raise ControlError('"pages" must be a list of Page ids, or null for every Page.')
        pages = tuple(dict.fromkeys(str(p) for p in pages))
        for page_id in pages:
            page_of(app, page_id)
    app.state.consent = Consent(
        user_token=user_token, user_id=str(user_id), decline=tuple(decline), pages=pages
    )
    return 200, {
        "user_token": user_token,
        "user_id": str(user_id),
        "decline": list(decline),
        "pages": None if pages is None else list(pages),
    }
