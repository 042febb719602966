"""The Graph API client: the only part of Pagecast that talks to Facebook (or the simulator).

`GraphClient` sends Messenger messages (one by one or in batches of up to 50), reads `/me`,
conversations and user profiles, and turns every failure into a `GraphError` whose `kind`
says what the caller should do (docs/design.md invariant 5, `docs/graph-errors.md`). It takes
setting *values* through its constructor and a caller-owned keep-alive pool on aiohttp
(`make_http_client`, `transport.GraphHttp`); nothing connects at import.
"""

from __future__ import annotations

from pagecast.graph.client import (
    DEFAULT_CONVERSATION_FIELDS,
    DEFAULT_PROFILE_FIELDS,
    WEBHOOK_FIELDS,
    GraphClient,
    make_http_client,
)
from pagecast.graph.errors import (
    DEFAULT_THROTTLE_SECONDS,
    ErrorKind,
    GraphError,
    classify,
    code_text,
    is_per_second_limit,
    is_spam_warning,
    revokes_token,
)
from pagecast.graph.models import (
    BatchMessage,
    Conversation,
    ConversationMessage,
    ConversationPage,
    PageIdentity,
    Participant,
    SendResult,
    UserProfile,
)
from pagecast.graph.security import PageCredentials, appsecret_proof, verify_signature
from pagecast.graph.usage import Usage, UsageEntry

__all__ = [
    "DEFAULT_CONVERSATION_FIELDS",
    "DEFAULT_PROFILE_FIELDS",
    "DEFAULT_THROTTLE_SECONDS",
    "WEBHOOK_FIELDS",
    "BatchMessage",
    "Conversation",
    "ConversationMessage",
    "ConversationPage",
    "ErrorKind",
    "GraphClient",
    "GraphError",
    "PageCredentials",
    "PageIdentity",
    "Participant",
    "SendResult",
    "Usage",
    "UsageEntry",
    "UserProfile",
    "appsecret_proof",
    "classify",
    "code_text",
    "is_per_second_limit",
    "is_spam_warning",
    "make_http_client",
    "revokes_token",
    "verify_signature",
]
