"""Pagecast settings: one pydantic-settings object, the only reader of the environment.

Every field is documented; `docs/settings.md` is generated from this module
(`pagecast config docs > docs/settings.md`) and a test fails when the two drift.
"""

from __future__ import annotations

import functools
import os
import secrets
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, PositiveFloat, PositiveInt, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from pagecast.private_files import private_dir, tighten, write_private

__all__ = ["Settings", "get_settings", "render_settings_doc", "use_data_dir"]

_SECRET_KEY_FILE = "secret.key"
# `pagecast serve --demo` keeps its demo app secret here: its mark on a data directory.
DEMO_SECRET_FILE = "demo-app-secret"


def _env(name: str) -> AliasChoices:
    """`PAGECAST_<NAME>` first, then the conventional unprefixed variable."""
    return AliasChoices(f"PAGECAST_{name}", name)


class Settings(BaseSettings):
    """Pagecast's configuration, read from `PAGECAST_*` environment variables and `.env`."""

    model_config = SettingsConfigDict(
        env_prefix="PAGECAST_", env_file=".env", extra="ignore", populate_by_name=True
    )

    data_dir: Path = Field(
        Path("./pagecast-data"),
        description="Directory for the SQLite database, the generated secret key and the "
        "embedded Redis data. Created on first use with mode 0700; the database (with its "
        "`-wal` and `-shm` files) and the secrets in it are 0600, and wider modes left by an "
        "earlier version are tightened at start.",
    )
    database_url: str | None = Field(
        None,
        validation_alias=_env("DATABASE_URL"),
        description="SQLAlchemy URL of the database. Unset: SQLite in the data directory. "
        "`postgresql://user:pass@host/db` (as hosting providers hand it out) is accepted and "
        "uses asyncpg. `DATABASE_URL` is honoured too; `PAGECAST_DATABASE_URL` wins.",
    )
    redis_url: str | None = Field(
        None,
        validation_alias=_env("REDIS_URL"),
        description="Redis used by the sending queue. Unset: an embedded Redis server with its "
        "data in the data directory. `REDIS_URL` is honoured too; `PAGECAST_REDIS_URL` wins.",
    )
    secret_key: SecretStr | None = Field(
        None,
        description="Key that encrypts Page tokens at rest and signs sessions. Unset: generated "
        "on first run into `<data_dir>/secret.key` (file mode 0600). Losing it makes stored "
        "Page tokens unreadable: reconnect the Pages.",
    )
    login_attempt_limit: PositiveInt = Field(
        5,
        description="Login attempts allowed per client address and per email in "
        "`login_attempt_window` seconds (a successful one is given back); more are answered "
        "429 with `Retry-After`. Counted in Redis when Redis is configured, else in the "
        "database, so every web process shares the count.",
    )
    login_attempt_window: PositiveInt = Field(
        300,
        description="Seconds of the fixed window in which `login_attempt_limit` counts; the "
        "window starts at a key's first attempt.",
    )
    password_hash_concurrency: PositiveInt = Field(
        2,
        description="Password hashes and checks (argon2, about 50 to 400 ms of CPU each) run "
        "at once per process, in threads beside the event loop; more wait their turn. At most "
        "the number of cores the web process may use.",
    )
    session_days: PositiveInt = Field(
        14,
        description="Days a login session lasts (the dashboard's cookie); logout, a password "
        "change or an admin's sign-out ends it sooner.",
    )
    host: str = Field("127.0.0.1", description="Address `pagecast serve` and `web` listen on.")
    port: PositiveInt = Field(8000, description="Port `pagecast serve` and `web` listen on.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Level of Pagecast's log lines."
    )
    event_loop: Literal["auto", "asyncio", "uvloop"] = Field(
        "auto",
        description="Event loop of every Pagecast process: `auto` takes uvloop where it is "
        "installed (Linux and macOS) and asyncio's own loop elsewhere; `asyncio` forces "
        "asyncio's loop.",
    )
    graph_api_url: str = Field(
        "https://graph.facebook.com",
        description="Base URL of the Graph API. Point it at `pagecast simulator` to test "
        "without Facebook.",
    )
    graph_api_version: str = Field(
        "v25.0", description="Graph API version used in every call, e.g. `v25.0`."
    )
    graph_connect_timeout: PositiveFloat = Field(
        5.0, description="Seconds to wait for a connection to the Graph API."
    )
    graph_read_timeout: PositiveFloat = Field(
        30.0, description="Seconds to wait for a Graph API answer once the request is sent."
    )
    graph_max_connections: PositiveInt = Field(
        400, description="Size of the keep-alive connection pool to the Graph API, per process."
    )
    app_id: str | None = Field(
        None,
        description="The Facebook app's id (App Dashboard → App settings → Basic): "
        '"Connect with Facebook" sends people to the Login dialog of this app, and trades '
        "the code it gives back for a token with this id and `PAGECAST_APP_SECRET`.",
    )
    app_secret: SecretStr | None = Field(
        None,
        description="The Facebook app's secret: verifies webhook signatures, adds "
        "`appsecret_proof` to Graph calls for Pages that have no app secret of their own, and "
        "trades Facebook Login's codes for tokens.",
    )
    facebook_web_url: str = Field(
        "https://www.facebook.com",
        description="Base URL of Facebook's website, where the Login dialog is "
        "(`{url}/{version}/dialog/oauth`). Point it, with `PAGECAST_GRAPH_API_URL`, at "
        "`pagecast simulator`, which serves the dialog too, to test without Facebook.",
    )
    webhook_verify_token: SecretStr | None = Field(
        None,
        description="The verify token entered in the Facebook app's webhook setup; "
        "`GET /webhooks/messenger` answers the verification only when it matches.",
    )
    public_url: str | None = Field(
        None,
        description="The https address at which Facebook and your users reach Pagecast (behind "
        "a proxy, the proxy's), e.g. `https://pagecast.example.com`. The webhook callback URL "
        "that `GET /api/pages/{id}/webhook` and `pagecast pages webhook` show is built from it.",
    )
    max_body_bytes: PositiveInt = Field(
        1_048_576,
        description="Largest request body any route accepts, in bytes, unless the route "
        "takes uploads (the CSV import: `import_max_bytes`) or is the webhook "
        "(`webhook_max_body_bytes`). A "
        "larger body is answered 413 before it is read: at once when its `Content-Length` is "
        "over the limit, and as soon as a body without one (chunked) passes it.",
    )
    webhook_max_body_bytes: PositiveInt = Field(
        1_048_576,
        description="Largest webhook body accepted, in bytes; a larger one is answered 413 "
        "before its signature is checked, without being read fully or stored.",
    )
    webhook_max_entries: PositiveInt = Field(
        1_000,
        description="Most entries (`entry[]`) one webhook POST may carry; a correctly signed "
        "body with more is answered 413 and nothing of it is stored. Meta batches far fewer "
        "(a few per POST, rarely more than a hundred).",
    )
    import_max_bytes: PositiveInt = Field(
        100 * 1024 * 1024,
        description="Largest CSV file a contact import accepts, in bytes; a larger upload is "
        "answered 413 before more than this is read (`Content-Length` first, then while the "
        "file is stored).",
    )
    import_max_tags_per_contact: PositiveInt = Field(
        50,
        description="Most tags one row of a contact import may carry; a row with more is "
        "refused, with the reason, and the rest of the file is imported.",
    )
    import_batch_rows: int = Field(
        2000,
        ge=100,
        le=10_000,
        description="Rows a contact import reads and writes per transaction (100 to 10,000). "
        "Between batches webhooks and progress reads get the database; SQLite has one "
        "writer at a time.",
    )
    default_page_send_rate: PositiveFloat = Field(
        40.0,
        description="Messages per second for a newly connected Page. Above about 40/s Meta's "
        "Page inbox stops showing new messages; the Send API allows at most 300/s for text.",
    )
    redis_tls_ca_file: Path | None = Field(
        None, description="CA bundle that verifies a `rediss://` Redis server's certificate."
    )
    redis_tls_verify: bool = Field(
        True, description="Verify the certificate of a `rediss://` Redis server."
    )
    worker_concurrency: PositiveInt = Field(
        100, description="Sends in flight at once in one worker process (`pagecast worker`)."
    )
    worker_nice: int = Field(
        0,
        ge=0,
        le=19,
        description="Nice value a `pagecast worker` process lowers itself to at start, 0 to 19 "
        "(higher: it yields the CPU sooner; a process may lower its own priority without "
        "privileges, and one started lower stays there). Where `pagecast web` shares its cores with workers, 10 keeps the API "
        "and the dashboard answering within milliseconds during a large send "
        "(docs/performance.md, P7). `pagecast serve` runs both in one process and ignores it.",
    )
    chunk_size: PositiveInt = Field(
        100,
        description="The fewest deliveries per queue job (one claim, one result write per "
        "chunk). A campaign's chunks hold about a second of its rate, up to 500 (or this, if "
        "larger).",
    )
    send_batch_size: int = Field(
        1,
        ge=1,
        le=50,
        description="Messages per Send request. 1 (the default) sends every message in its "
        "own request; up to 50 go out as one Graph batch request (each still counts toward "
        "the Page's limits). A batch costs about a quarter of the worker's CPU per message, "
        "but its 50 calls reach Graph at once, so a batch that arrives late in a second can "
        "take that second over the Page's limit (613 errors), and a batch whose answer is "
        "lost leaves all its messages `unknown` until echoes settle them.",
    )
    max_attempts: PositiveInt = Field(
        5,
        description="Attempts per delivery for temporary errors before it fails with "
        "`retries_exhausted`.",
    )
    retry_base_seconds: PositiveFloat = Field(
        2.0, description="First retry delay; it doubles per attempt, with jitter."
    )
    retry_cap_seconds: PositiveFloat = Field(600.0, description="Longest retry delay.")
    shutdown_grace_seconds: PositiveFloat = Field(
        30.0,
        description="On SIGTERM or SIGINT, how long a worker lets in-flight sends finish "
        "before it releases the rest.",
    )
    worker_heartbeat_ttl: PositiveInt = Field(
        30,
        description="Seconds after its last heartbeat when a worker counts as dead.",
    )
    unknown_grace: PositiveFloat = Field(
        600.0,
        description="Seconds after an ambiguous attempt (a timeout, or a worker that died "
        "mid-send) during which Pagecast waits for its echo. After it the message is sent "
        "again once, if the Page's echoes prove it never arrived, or else fails with reason "
        "`ambiguous`; never resent blindly.",
    )
    sweep_seconds: PositiveFloat = Field(
        15.0,
        description="How often a worker's sweep looks for lost jobs, dead workers' claims, due "
        "schedules, unprocessed webhook events and unknown deliveries to reconcile.",
    )
    webhook_retry_seconds: PositiveFloat = Field(
        30.0,
        description="Webhook events still unprocessed this long after they arrived are "
        "processed again by the sweep.",
    )
    webhooks_allow_private_targets: bool = Field(
        False,
        description="Outbound webhooks (issue 22): allow endpoints whose address, after DNS "
        "resolution, is private, loopback, link-local, unspecified, multicast or reserved "
        "(checked at each attempt). Off, such an attempt fails and says why; turn it on for "
        "tests and on-premise receivers inside your network.",
    )
    webhooks_timeout_seconds: PositiveFloat = Field(
        10.0,
        description="Outbound webhooks: seconds an endpoint has to answer one delivery "
        "(connecting included) before the attempt counts as failed and is retried.",
    )
    webhooks_poll_seconds: PositiveFloat = Field(
        2.0,
        description="Outbound webhooks: how often a worker looks for due deliveries to send.",
    )
    max_schedule_lateness: PositiveInt = Field(
        3600,
        description="Seconds a scheduled start may be late and still fire; a later one stays "
        "scheduled, flagged missed, until someone starts or reschedules it.",
    )
    breaker_consecutive_bad: PositiveInt = Field(
        20, description="Consecutive rejected requests (bad_request) that pause a campaign."
    )
    breaker_failure_ratio: PositiveFloat = Field(
        0.5,
        description="Share of refused requests (bad_request) among the last `breaker_window` "
        "answers about the campaign's requests that pauses it; recipient-level outcomes "
        "(unreachable, blocked, outside the window) are not counted.",
    )
    breaker_window: PositiveInt = Field(
        200,
        description="Answers about the campaign's requests (sent or refused) the failure "
        "ratio looks at.",
    )
    sqlite_busy_timeout_ms: PositiveInt = Field(
        30_000, description="How long a SQLite writer waits for the lock before failing."
    )

    def resolved_database_url(self) -> str:
        """The async SQLAlchemy URL to connect to (SQLite in the data dir when none is set)."""
        if self.database_url is None:
            return f"sqlite+aiosqlite:///{(self.data_dir / 'pagecast.db').resolve()}"
        return normalise_database_url(self.database_url)

    def uses_default_database(self) -> bool:
        return self.database_url is None

    def demo_without_its_simulator(self) -> bool:
        """The data directory is `serve --demo`'s while the Graph URL is Facebook's: the
        demo's Page lives in the simulator inside that `serve --demo` process only."""
        default = type(self).model_fields["graph_api_url"].default
        return self.graph_api_url == default and (self.data_dir / DEMO_SECRET_FILE).exists()

    def resolved_secret_key(self) -> bytes:
        """The secret key: the setting, or the data dir's key file (created, mode 0600, in the
        data directory, mode 0700: both tightened when an earlier run left them wider)."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value().encode()
        path = private_dir(self.data_dir) / _SECRET_KEY_FILE
        if path.exists():
            tighten(path, 0o600)
            return path.read_bytes().strip()
        key = secrets.token_urlsafe(32).encode()
        # Exclusive: two processes starting at once must not each write their own key.
        try:
            write_private(path, key, exclusive=True)
        except FileExistsError:
            return path.read_bytes().strip()
        return key


def normalise_database_url(url: str) -> str:
    """Map the URL forms people paste (`postgres://`, `postgresql://`, `sqlite://`) to async drivers."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url[len("sqlite://") :]
    return url


@functools.lru_cache
def get_settings() -> Settings:
    """The process's settings, read once from the environment."""
    return Settings()


def use_data_dir(path: Path) -> None:
    """Make `path` the data directory, as `PAGECAST_DATA_DIR` would (`pagecast --data-dir`).

    Set in the environment, so the processes this one starts use it too."""
    os.environ["PAGECAST_DATA_DIR"] = str(path)
    get_settings.cache_clear()


def env_names(field_name: str) -> list[str]:
    """The environment variables that set a field (given by its name or one of its aliases),
    in the order they are read; [] for an unknown name."""
    for name, field in Settings.model_fields.items():
        choices = []
        if isinstance(field.validation_alias, AliasChoices):
            choices = [str(choice) for choice in field.validation_alias.choices]
        if field_name == name or field_name in choices:
            return choices or [f"PAGECAST_{name.upper()}"]
    return []


def render_settings_doc() -> str:
    """Markdown for `docs/settings.md`, one section per field."""
    lines = [
        "# Settings",
        "",
        "<!-- Generated by `pagecast config docs > docs/settings.md`; a test fails when it drifts. -->",
        "",
        "Pagecast reads its settings from environment variables (and a `.env` file in the",
        "working directory). Each variable is the field name in upper case with the prefix",
        "`PAGECAST_`.",
        "",
    ]
    for name, field in Settings.model_fields.items():
        default = field.default
        if isinstance(default, Path):
            default = str(default)
        shown_default = "unset" if default is None else f"`{default}`"
        lines += [
            f"## {name}",
            "",
            f"- Variable: {', '.join(f'`{env}`' for env in env_names(name))}",
            f"- Default: {shown_default}",
            "",
            str(field.description),
            "",
        ]
    return "\n".join(lines)
