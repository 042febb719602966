"""Redis URLs: parse and validate them once, mask their passwords, and turn them into
connection options for redis-py and bullmq.

Nothing here connects. `parse_redis_url` raises `ConfigError` naming the setting, the value
with its password masked and the accepted forms; `RedisTarget.connection_kwargs()` gives the
keyword arguments for `redis.asyncio.Redis(...)`, and the same dict is bullmq's `connection`
option (bullmq builds one client per connection from a dict, so a worker's blocking pop gets
its own socket; a shared `Redis` instance would make both use one).
"""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from pagecast.errors import ConfigError

__all__ = [
    "CONNECT_TIMEOUT",
    "DEFAULT_PORT",
    "HEALTH_CHECK_INTERVAL",
    "RedisTarget",
    "mask_redis_url",
    "parse_redis_url",
    "unreachable_message",
]

DEFAULT_PORT = 6379
CONNECT_TIMEOUT = 5.0
HEALTH_CHECK_INTERVAL = 30

_FORMS = (
    "Use redis://[[user]:password@]host[:port][/db], rediss://… (the same over TLS), "
    "or unix:///path/to/redis.sock[?db=N]."
)
_SCHEMES = ("redis", "rediss", "unix")
_QUERY_KEYS = {"db", "ssl_cert_reqs", "ssl_ca_certs"}
_PASSWORD_QUERY = re.compile(r"([?&]password=)[^&#]*", re.IGNORECASE)


@dataclass(frozen=True)
class RedisTarget:
    """Where a Redis server is and how to reach it; `repr` and `masked` never show the password."""

    host: str | None = None
    port: int | None = None
    unix_path: str | None = None
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    tls_ca_file: str | None = None
    tls_verify: bool = True
    setting: str = "REDIS_URL"
    masked: str = ""

    def __repr__(self) -> str:
        return f"RedisTarget({self.masked!r})"

    @property
    def where(self) -> str:
        """`HOST:PORT` (`[v6]:PORT` for IPv6) or the unix socket path."""
        if self.unix_path is not None:
            return self.unix_path
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"{host}:{self.port}"

    def connection_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `redis.asyncio.Redis(...)`, also usable as bullmq's `connection`.

        No `decode_responses`, `retry` or `retry_on_error`: bullmq sets those itself and would
        fail on a duplicate keyword.
        """
        kwargs: dict[str, Any] = {
            "db": self.db,
            "username": self.username,
            "password": self.password,
            # redis-py 8 defaults to a 5 s read timeout, the same as bullmq's idle blocking
            # pop, which stalls idle workers (docs/design.md, "The queue library").
            "socket_timeout": None,
            "socket_connect_timeout": CONNECT_TIMEOUT,
            "health_check_interval": HEALTH_CHECK_INTERVAL,
        }
        if self.unix_path is not None:
            kwargs["unix_socket_path"] = self.unix_path
            return kwargs
        kwargs.update(host=self.host, port=self.port, socket_keepalive=True)
        if self.tls:
            kwargs.update(
                ssl=True,
                ssl_cert_reqs="required" if self.tls_verify else "none",
                ssl_check_hostname=self.tls_verify,
                ssl_ca_certs=self.tls_ca_file,
            )
        return kwargs


def parse_redis_url(
    url: str,
    *,
    setting: str = "REDIS_URL",
    tls_ca_file: str | None = None,
    tls_verify: bool = True,
) -> RedisTarget:
    """Parse a Redis URL into a `RedisTarget`.

    `tls_ca_file` and `tls_verify` apply to `rediss://` URLs; an `ssl_cert_reqs=none` or
    `ssl_ca_certs=` query parameter does the same from the URL itself.

    Raises:
        ConfigError: the URL is not one of the accepted forms; the message names `setting`
            and shows the value with its password masked.
    """
    masked = mask_redis_url(url)

    def bad(why: str) -> ConfigError:
        return ConfigError(
            f"{setting} is not a Redis URL: {masked!r} ({why}). {_FORMS}", field=setting
        )

    text = url.strip()
    if not text:
        return _raise(bad("it is empty"))
    if "://" not in text:
        return _raise(bad("no scheme"))
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        return _raise(bad(_port_reason(str(exc))))
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        return _raise(bad(f"unknown scheme {scheme!r}"))
    if parts.fragment:
        return _raise(bad("a '#' fragment is not allowed"))

    query: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in _QUERY_KEYS:
            allowed = ", ".join(sorted(_QUERY_KEYS))
            return _raise(bad(f"unknown parameter {key!r}; allowed: {allowed}"))
        query[key] = value

    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    db_text = query.get("db")
    host: str | None = None
    unix_path: str | None = None

    if scheme == "unix":
        if parts.hostname or port is not None:
            return _raise(bad("a unix URL has no host; write unix:///absolute/path.sock"))
        unix_path = unquote(parts.path)
        if not unix_path.startswith("/") or unix_path == "/":
            return _raise(bad("the socket path is missing or not absolute"))
    else:
        host = parts.hostname
        if not host:
            return _raise(bad("the host is missing"))
        path = parts.path.strip("/")
        if path:
            if db_text is not None and db_text != path:
                return _raise(bad(f"two databases: /{path} and ?db={db_text}"))
            db_text = path

    db = 0
    if db_text is not None:
        if not db_text.isdigit():
            return _raise(bad(f"the database {db_text!r} is not a number ≥ 0"))
        db = int(db_text)

    tls = scheme == "rediss"
    ca_file = tls_ca_file
    verify = tls_verify
    if "ssl_cert_reqs" in query or "ssl_ca_certs" in query:
        if not tls:
            return _raise(bad("ssl_cert_reqs and ssl_ca_certs need rediss://"))
        reqs = query.get("ssl_cert_reqs", "required").lower()
        if reqs not in ("none", "optional", "required"):
            return _raise(bad(f"ssl_cert_reqs must be none or required, not {reqs!r}"))
        verify = verify and reqs != "none"
        ca_file = ca_file or query.get("ssl_ca_certs") or None

    return RedisTarget(
        host=host,
        port=None if unix_path else (port or DEFAULT_PORT),
        unix_path=unix_path,
        db=db,
        username=username,
        password=password,
        tls=tls,
        tls_ca_file=ca_file if tls else None,
        tls_verify=verify,
        setting=setting,
        masked=masked,
    )


def mask_redis_url(url: str) -> str:
    """The URL with any password (in the user info or a `password=` parameter) shown as `***`.

    Works on malformed input too, so error messages can quote what was given.
    """
    head, sep, rest = url.partition("://")
    if not sep:
        # No scheme: anything before an '@' may be a secret.
        head, at, tail = url.rpartition("@")
        return f"***@{tail}" if at else url
    end = len(rest)
    for stop in "?#":
        index = rest.find(stop)
        if index != -1:
            end = min(end, index)
    # The last '@' before the query ends the user info, as in urllib; a password holding an
    # unescaped '/' or '@' is still masked whole.
    userinfo, at, after = rest[:end].rpartition("@")
    if at:
        user, colon, _ = userinfo.partition(":")
        userinfo = f"{user}:***" if colon else userinfo
        rest = f"{userinfo}@{after}{rest[end:]}"
    return _PASSWORD_QUERY.sub(r"\1***", f"{head}://{rest}")


def unreachable_message(target: RedisTarget, exc: BaseException) -> str:
    """The one-line explanation for a Redis that did not answer."""
    return (
        f"Redis at {target.where} is unreachable ({_reason(exc, target)}). "
        f"Start Redis, or unset {target.setting} to use the embedded one."
    )


def _raise(exc: ConfigError) -> RedisTarget:
    raise exc


def _port_reason(message: str) -> str:
    if "port" in message.lower():
        return "the port is not a number from 1 to 65535"
    return message


_CONNECT_ERROR = re.compile(r"^Error -?\d+ (?:while )?connecting to .*?\.\s+(?P<reason>.+)$", re.S)


def _reason(exc: BaseException, target: RedisTarget) -> str:
    """A short reason (`Connection refused`, `Timeout connecting to server`) from the exception."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno:
            # asyncio words a refused connection "Connect call failed (addr)": use the errno.
            reason = os.strerror(seen.errno)
            if seen.errno == errno.ENOENT and target.unix_path:
                reason = "no socket at that path"
            break
        seen = seen.__cause__ or seen.__context__
    else:
        text = str(exc).strip() or type(exc).__name__
        match = _CONNECT_ERROR.match(text)
        reason = match.group("reason") if match else text
    reason = reason.strip().rstrip(".")
    if target.password:
        reason = reason.replace(target.password, "***")
    return reason
