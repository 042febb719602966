"""Facebook Login through the Graph client, as `services.facebook_connect` needs it.

`GraphFacebook` holds the app's id and secret and turns what Facebook refuses into
`PagecastError`s that say what to do (`oauth_problem`, docs/graph-api.md); its refusals are
502s (`UpstreamError`), as for a pasted Page token that Facebook refuses.
`AppContext.facebook_login()` makes one, refusing first when a setting is missing.
"""

from __future__ import annotations

from pagecast.errors import ServiceUnavailable, UpstreamError
from pagecast.graph import LOGIN_SCOPES, GraphClient, GraphError, OAuthProblem, PageCredentials
from pagecast.services.facebook_connect import Grants, ListedPage
from pagecast.services.webhook_setup import SUBSCRIBE_FIELDS

__all__ = ["GraphFacebook", "missing_settings"]

_AGAIN = 'Press "Connect with Facebook" again'
_PROBLEMS = {
    OAuthProblem.CODE_USED: (
        "code",
        f"Facebook's code was already used; each works once. {_AGAIN}.",
    ),
    OAuthProblem.CODE_EXPIRED: (
        "code",
        f"Facebook's code has expired (codes last ten minutes). {_AGAIN}.",
    ),
    OAuthProblem.CODE_INVALID: ("code", f"Facebook does not know this code. {_AGAIN}."),
    OAuthProblem.REDIRECT_URI_MISMATCH: (
        "code",
        "Facebook refused the code: the callback address differs from the one the dialog was "
        "opened with. Set PAGECAST_PUBLIC_URL to the address people open Pagecast at, and add "
        "its /pages/connect/facebook/callback to the app's Valid OAuth Redirect URIs.",
    ),
    OAuthProblem.APP_ID_INVALID: (
        None,
        "Facebook does not know the app PAGECAST_APP_ID names; copy the App ID from the App "
        "Dashboard (App settings → Basic).",
    ),
    OAuthProblem.APP_SECRET_INVALID: (
        None,
        "Facebook refused PAGECAST_APP_SECRET: it is not the secret of the app PAGECAST_APP_ID "
        "names. Copy the App secret from the App Dashboard (App settings → Basic).",
    ),
    OAuthProblem.TOKEN_INVALID: (
        "user_access_token",
        "Facebook refused the user access token: it is expired, revoked, or not a user token. "
        "Log in with Facebook again for a new one.",
    ),
}


def missing_settings(app_id: str | None, app_secret: str | None) -> str | None:
    """Why "Connect with Facebook" cannot run with these settings, or None."""
    missing = [
        name
        for name, value in (("PAGECAST_APP_ID", app_id), ("PAGECAST_APP_SECRET", app_secret))
        if not value
    ]
    if not missing:
        return None
    return (
        f"Connect with Facebook needs {' and '.join(missing)}: set "
        f"{'them' if len(missing) > 1 else 'it'} to your Facebook app's "
        "App ID and App secret (App Dashboard → App settings → Basic) and restart Pagecast. "
        "Until then, connect a Page by pasting a Page access token."
    )


class GraphFacebook:
    """The app's side of Facebook Login (services.facebook_connect.Facebook)."""

    def __init__(
        self, graph: GraphClient, *, app_id: str | None, app_secret: str | None, web_url: str
    ) -> None:
        problem = missing_settings(app_id, app_secret)
        if problem is not None:
            raise ServiceUnavailable(problem)
        assert app_id is not None and app_secret is not None
        self._graph, self._app_id, self._secret, self._web_url = graph, app_id, app_secret, web_url

    def dialog_url(self, redirect_uri: str, state: str) -> str:
        """Facebook's Login dialog, asking for the permissions Pagecast needs."""
        return self._graph.oauth_dialog_url(
            self._web_url, self._app_id, redirect_uri, state, LOGIN_SCOPES
        )

    async def exchange_code(self, code: str, redirect_uri: str) -> str:
        try:
            token = await self._graph.exchange_code(self._app_id, self._secret, redirect_uri, code)
        except GraphError as exc:
            raise _refused(exc, "the code") from None
        return token.access_token

    async def long_lived(self, user_token: str) -> str:
        try:
            token = await self._graph.long_lived_user_token(self._app_id, self._secret, user_token)
        except GraphError as exc:
            raise _refused(exc, "the user access token") from None
        return token.access_token

    async def grants(self, user_token: str) -> Grants:
        try:
            found = await self._graph.permissions(user_token, app_secret=self._secret)
        except GraphError as exc:
            raise _refused(exc, "the permissions") from None
        return Grants(granted=found.granted, declined=found.declined)

    async def pages(self, user_token: str) -> list[ListedPage]:
        try:
            listed = await self._graph.user_pages(user_token, app_secret=self._secret)
        except GraphError as exc:
            raise _refused(exc, "your Pages") from None
        return [ListedPage(p.id, p.name or p.id, p.access_token) for p in listed]

    async def subscribe(self, page_token: str, fb_page_id: str) -> str | None:
        creds = PageCredentials(page_token, self._secret)
        try:
            if await self._graph.subscribe_app(creds, fb_page_id, fields=SUBSCRIBE_FIELDS):
                return None
        except GraphError as exc:
            return (
                "Facebook refused to subscribe Pagecast to the Page's webhooks: "
                f"{exc.message} (code {exc.code_text})."
            )
        return "Facebook did not confirm the webhook subscription; connect the Page again."


def _refused(exc: GraphError, what: str) -> UpstreamError:
    if exc.oauth_problem is not None:
        field, message = _PROBLEMS[exc.oauth_problem]
        return UpstreamError(message, field=field)
    return UpstreamError(
        f"Facebook did not answer for {what} ({exc.kind.value}: {exc.message}). "
        f"{_AGAIN} in a minute.",
    )
