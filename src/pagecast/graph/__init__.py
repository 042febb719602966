"""The Graph API client: the only part of Pagecast that talks to Facebook (or the simulator).

`GraphClient` sends Messenger messages (one by one or in batches of up to 50), reads `/me`,
conversations and user profiles, runs Facebook Login's server side (dialog URL, code
exchange, long-lived token, `/me/accounts`, `/me/permissions`, `debug_token`), and turns
every failure into a `GraphError` whose `kind` says what the caller should do
(docs/design.md invariant 5, `docs/graph-errors.md`). It takes
setting *values* through its constructor and a caller-owned keep-alive pool on aiohttp
(`make_http_client`, `transport.GraphHttp`); nothing connects at import.
"""

from __future__ import annotations

from pagecast.graph.client import (
    DEFAULT_CONVERSATION_FIELDS,
    DEFAULT_PROFILE_FIELDS,
    LOGIN_SCOPES,
    WEBHOOK_FIELDS,
    GraphClient,
    make_http_client,
)
from pagecast.graph.errors import (
    DEFAULT_THROTTLE_SECONDS,
    ErrorKind,
    GraphError,
    OAuthProblem,
    classify,
    code_text,
    is_per_second_limit,
    is_spam_warning,
    oauth_problem,
    revokes_token,
)
from pagecast.graph.models import (
    BatchMessage,
    Conversation,
    ConversationMessage,
    ConversationPage,
    GranularScope,
    ManagedPage,
    PageIdentity,
    Participant,
    Permissions,
    SendResult,
    TokenInfo,
    UserProfile,
    UserToken,
)
from pagecast.graph.security import PageCredentials, appsecret_proof, verify_signature
from pagecast.graph.usage import Usage, UsageEntry

__all__ = [
    "DEFAULT_CONVERSATION_FIELDS",
    "DEFAULT_PROFILE_FIELDS",
    "DEFAULT_THROTTLE_SECONDS",
    "LOGIN_SCOPES",
    "WEBHOOK_FIELDS",
    "BatchMessage",
    "Conversation",
    "ConversationMessage",
    "ConversationPage",
    "ErrorKind",
    "GranularScope",
    "GraphClient",
    "GraphError",
    "ManagedPage",
    "OAuthProblem",
    "PageCredentials",
    "PageIdentity",
    "Participant",
    "Permissions",
    "SendResult",
    "TokenInfo",
    "Usage",
    "UsageEntry",
    "UserProfile",
    "UserToken",
    "appsecret_proof",
    "classify",
    "code_text",
    "is_per_second_limit",
    "is_spam_warning",
    "make_http_client",
    "oauth_problem",
    "revokes_token",
    "verify_signature",
]
