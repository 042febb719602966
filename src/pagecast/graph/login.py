"""Facebook Login's Graph calls, the half of `GraphClient` a "Connect with Facebook" flow uses:
the dialog's URL, the code and token exchanges, the user's Pages, permissions and
`debug_token` (docs/graph-api.md, "Facebook Login").

They reach Graph through the client's one request path (`_call`, in client.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from pagecast.graph import wire
from pagecast.graph.errors import ErrorKind, GraphError, oauth_problem
from pagecast.graph.models import ManagedPage, Permissions, TokenInfo, UserToken
from pagecast.graph.security import PageCredentials
from pagecast.graph.usage import Usage

__all__ = ["LOGIN_SCOPES", "LoginCalls"]

# What the Login dialog asks for (issue 19): send, subscribe the app to the Page's webhooks,
# read its conversations, list the person's Pages.
LOGIN_SCOPES = (
    "pages_messaging",
    "pages_manage_metadata",
    "pages_read_engagement",
    "pages_show_list",
)
_ACCOUNT_FIELDS = "id,name,access_token,tasks,category"


class LoginCalls:
    """Facebook Login calls; `GraphClient` provides the request path."""

    _version: str

    # GraphClient's one request path (client.py), named here for the type checker only.
    _call: Callable[..., Awaitable[tuple[Any, Usage]]]

    def oauth_dialog_url(
        self, web_url: str, app_id: str, redirect_uri: str, state: str, scopes: Sequence[str]
    ) -> str:
        """The Login dialog's address on `web_url` (`PAGECAST_FACEBOOK_WEB_URL`), at this
        client's Graph version, asking for `scopes` with `response_type=code`. No I/O.

        Facebook sends the person back to `redirect_uri` with `code` and `state` (compare it
        with the one bound to their session), or with `error=access_denied` when they cancel.
        """
        query = urlencode(
            {
                "client_id": app_id,
                "redirect_uri": redirect_uri,
                "state": state,
                "scope": ",".join(scopes),
                "response_type": "code",
            }
        )
        return f"{web_url.rstrip('/')}/{self._version}/dialog/oauth?{query}"

    async def exchange_code(
        self, app_id: str, app_secret: str, redirect_uri: str, code: str
    ) -> UserToken:
        """`GET /oauth/access_token`: the dialog's `code` for a short-lived user token.

        `redirect_uri` must be the dialog's, character for character. A code is single use:
        a failure that may have reached Facebook is `ambiguous` (start the login again).

        Raises:
            GraphError: with `oauth_problem` set when Facebook refused (`code_used`,
                `code_expired`, `redirect_uri_mismatch`, `code_invalid`, `app_id_invalid`,
                `app_secret_invalid`); `kind` is then `bad_request`.
        """
        params = {
            "client_id": app_id,
            "redirect_uri": redirect_uri,
            "client_secret": app_secret,
            "code": code,
        }
        data, usage = await self._login_call(
            None, "oauth/access_token", params, (app_secret, code), code_exchange=True
        )
        return wire.user_token(data, usage, context="GET oauth/access_token", idempotent=False)

    async def long_lived_user_token(self, app_id: str, app_secret: str, token: str) -> UserToken:
        """`GET /oauth/access_token?grant_type=fb_exchange_token`: a long-lived user token
        (about 60 days) for a short-lived one. Page tokens listed with it do not expire on a
        timer (docs/graph-api.md).

        Raises:
            GraphError: with `oauth_problem` set when Facebook refused.
        """
        params = {
            "grant_type": "fb_exchange_token",
            "client_id": app_id,
            "client_secret": app_secret,
            "fb_exchange_token": token,
        }
        data, usage = await self._login_call(
            None, "oauth/access_token", params, (app_secret, token)
        )
        return wire.user_token(data, usage, context="GET oauth/access_token", idempotent=True)

    async def user_pages(
        self, user_token: str, *, app_secret: str | None = None, limit: int = 100
    ) -> list[ManagedPage]:
        """`GET /me/accounts`, every page of it: the Pages the person manages and granted
        this app, each with its own Page access token. `app_secret` adds `appsecret_proof`.

        Raises:
            GraphError: with `oauth_problem` `token_invalid` for a token that is not a valid
                user token.
        """
        creds = PageCredentials(user_token, app_secret)
        params = {"fields": _ACCOUNT_FIELDS, "limit": str(limit)}
        pages: list[ManagedPage] = []
        seen: set[str] = set()
        while True:
            data, usage = await self._login_call(creds, "me/accounts", params)
            items = data.get("data") if isinstance(data, dict) else None
            if not isinstance(items, list):
                raise wire.bad_answer(
                    "GET me/accounts", usage, idempotent=True, detail="no data array"
                )
            try:
                pages += [ManagedPage.model_validate(i) for i in items if isinstance(i, dict)]
            except ValueError:  # pydantic's text would quote the Page token: no cause
                raise wire.bad_answer(
                    "GET me/accounts", usage, idempotent=True, detail="bad Page"
                ) from None
            paging = data.get("paging")
            next_url = paging.get("next") if isinstance(paging, dict) else None
            if not isinstance(next_url, str) or not next_url or next_url in seen:
                return pages
            seen.add(next_url)
            # As for conversations: the next URL's query only (it repeats the token).
            params = {
                k: v for k, v in parse_qsl(urlsplit(next_url).query) if k not in wire.AUTH_PARAMS
            }

    async def permissions(self, user_token: str, *, app_secret: str | None = None) -> Permissions:
        """`GET /me/permissions`: what the person granted and declined to this app.

        Raises:
            GraphError: with `oauth_problem` `token_invalid` for a token that is not a valid
                user token.
        """
        creds = PageCredentials(user_token, app_secret)
        data, usage = await self._login_call(creds, "me/permissions", {})
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise wire.bad_answer(
                "GET me/permissions", usage, idempotent=True, detail="no data array"
            )
        by_status: dict[str, list[str]] = {"granted": [], "declined": [], "expired": []}
        for item in items:
            if isinstance(item, dict) and isinstance(item.get("permission"), str):
                by_status.get(str(item.get("status")), []).append(item["permission"])
        return Permissions(
            granted=tuple(by_status["granted"]),
            declined=tuple(by_status["declined"]),
            expired=tuple(by_status["expired"]),
        )

    async def debug_token(self, app_id: str, app_secret: str, token: str) -> TokenInfo:
        """`GET /debug_token?input_token=...` with the app's token (`app_id|app_secret`, in
        the header): whose token it is, its type, expiry and permissions. An invalid token
        is not an error here: `TokenInfo.is_valid` is False, with `error_code` saying why.

        Raises:
            GraphError: with `oauth_problem` set when the app's credentials were refused.
        """
        app_token = f"{app_id}|{app_secret}"
        data, usage = await self._login_call(
            PageCredentials(app_token),
            "debug_token",
            {"input_token": token},
            (app_secret, token),
        )
        info = data.get("data") if isinstance(data, dict) else None
        if not isinstance(info, dict):
            raise wire.bad_answer("GET debug_token", usage, idempotent=True, detail="no data")
        try:
            return TokenInfo.from_graph(info)
        except ValueError:
            raise wire.bad_answer(
                "GET debug_token", usage, idempotent=True, detail="bad token data"
            ) from None

    async def _login_call(
        self,
        creds: PageCredentials | None,
        path: str,
        params: Mapping[str, str],
        secrets: tuple[str, ...] = (),
        *,
        code_exchange: bool = False,
    ) -> tuple[Any, Usage]:
        """A GET of Facebook Login; a refusal gets its `oauth_problem` and is `bad_request`."""

        def refine(error: GraphError) -> None:
            problem = oauth_problem(
                error.code, error.subcode, error.graph_message or "", code_exchange=code_exchange
            )
            if problem is not None:
                error.oauth_problem, error.kind = problem, ErrorKind.BAD_REQUEST

        return await self._call(
            creds,
            "GET",
            path,
            params=params,
            idempotent=not code_exchange,
            secrets=secrets,
            refine=refine,
        )
