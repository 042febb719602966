"""Shared pieces of the command line: the Typer apps, running a command, rendering failures.

Expected failures (`PagecastError`) and usage errors (a missing argument, an id that is not a
number, a file that does not exist) print one line to stderr and exit 1; `--debug` shows the
traceback instead.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import typer

# Typer (0.29) carries its own copy of click; its usage errors are these classes, not click's.
from typer._click import exceptions as click_errors

from pagecast.errors import PagecastError

if TYPE_CHECKING:
    from pagecast.settings import Settings

__all__ = [
    "app",
    "campaigns_app",
    "cli_actor",
    "config_app",
    "contacts_app",
    "db_app",
    "fail",
    "id_argument",
    "id_option",
    "load_settings",
    "main",
    "masked",
    "optional_id_option",
    "pages_app",
    "run",
    "series_app",
    "tokens_app",
    "users_app",
    "validation_line",
]

T = TypeVar("T")

app = typer.Typer(
    name="pagecast",
    help="Facebook Messenger campaigns for your Pages.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    add_completion=False,
)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
users_app = typer.Typer(help="Users and their roles.", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens.", no_args_is_help=True)
pages_app = typer.Typer(help="Facebook Pages.", no_args_is_help=True)
contacts_app = typer.Typer(help="Contacts of a Page.", no_args_is_help=True)
campaigns_app = typer.Typer(help="Campaigns.", no_args_is_help=True)
series_app = typer.Typer(help="Recurring series of campaigns.", no_args_is_help=True)
config_app = typer.Typer(help="Settings.", no_args_is_help=True)
for _name, _sub in (
    ("db", db_app),
    ("users", users_app),
    ("tokens", tokens_app),
    ("pages", pages_app),
    ("contacts", contacts_app),
    ("campaigns", campaigns_app),
    ("series", series_app),
    ("config", config_app),
):
    app.add_typer(_sub, name=_name)

state: dict[str, Any] = {"debug": False, "url": None, "token": None}


@app.callback()
def _options(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
    data_dir: Path | None = typer.Option(
        None,
        "--data-dir",
        help="Where the SQLite database, the secret key and the embedded Redis live "
        "(PAGECAST_DATA_DIR; default ./pagecast-data).",
    ),
    url: str | None = typer.Option(
        None,
        "--url",
        envvar="PAGECAST_URL",
        help="Drive a remote Pagecast over its API (e.g. https://pagecast.example.com) "
        "instead of this machine's database; needs --token.",
    ),
    token: str | None = typer.Option(
        None,
        "--token",
        envvar="PAGECAST_TOKEN",
        help="The API token for --url (`pagecast tokens create` on the server).",
    ),
) -> None:
    state["debug"] = debug
    state["url"], state["token"] = url, token
    if data_dir is not None:
        from pagecast.settings import use_data_dir

        use_data_dir(data_dir)


def main() -> None:
    """Run the command line; usage errors become one line on stderr and exit 1.

    Click's own rendering is a boxed, multi-line usage text with exit 2; the README promises
    one line and exit 1 for every error, whatever part of the CLI finds it.
    """
    command = typer.main.get_command(app)
    try:
        code = command.main(prog_name="pagecast", standalone_mode=False)
    except click_errors.NoArgsIsHelpError as exc:
        # A group named alone (`pagecast campaigns`): its help is what was asked for.
        typer.echo(exc.ctx.get_help() if exc.ctx is not None else "")
        code = 0
    except click_errors.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "pagecast"
        message = " ".join(exc.format_message().split())
        typer.echo(f"Error: {message.rstrip('.')}. See `{where} --help`.", err=True)
        code = 1
    except click_errors.ClickException as exc:
        typer.echo(f"Error: {' '.join(exc.format_message().split())}", err=True)
        code = 1
    except typer.Abort:
        typer.echo("Aborted.", err=True)
        code = 1
    sys.exit(code if isinstance(code, int) else 0)


def fail(message: str) -> NoReturn:
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(1)


def _an_id(value: int | None) -> int | None:
    """An id's range is the API's (`schemas.Id`): a number outside it is refused before
    anything runs, with the range, instead of failing deep in the database driver."""
    from pagecast.schemas import ID_MAX  # at use: `pagecast --help` stays light

    if value is not None and not 1 <= value <= ID_MAX:
        raise typer.BadParameter(f"{value} is not an id: ids run from 1 to {ID_MAX}.")
    return value


def id_argument(help: str | None = None) -> Any:
    """A required id argument, checked against the range of ids."""
    return typer.Argument(..., callback=_an_id, help=help)


def id_option(name: str, help: str | None = None) -> Any:
    """A required id option (e.g. `--page`), checked against the range of ids."""
    return typer.Option(..., name, callback=_an_id, help=help)


def optional_id_option(name: str, help: str | None = None) -> Any:
    """An id option that may be left out (e.g. `--segment`), checked against the range of ids."""
    return typer.Option(None, name, callback=_an_id, help=help)


def load_settings() -> Settings:
    """The settings; a value that does not validate ends the command with one line naming
    its variable (the value is not echoed: it may be a secret)."""
    from pydantic import ValidationError

    from pagecast.settings import env_names, get_settings

    try:
        return get_settings()
    except ValidationError as exc:
        if state["debug"]:
            raise
        errors = exc.errors()
        names = env_names(str(errors[0]["loc"][0])) if errors[0]["loc"] else []
        where = f"{' or '.join(names)}: " if names else ""
        message = str(errors[0]["msg"]).removeprefix("Value error, ")
        more = f" ({len(errors) - 1} more: --debug shows them)" if len(errors) > 1 else ""
        fail(
            f"{where}{message}{more}. The settings are in docs/settings.md "
            "(`pagecast config docs`)."
        )


def run(make: Callable[[Any], Awaitable[T]], *, migrate: bool = True) -> T:
    """Run `make(ctx)` with a fresh app context; expected errors become one line and exit 1.

    On the default SQLite database the schema is brought up to date first, as `serve` does.
    """
    from pagecast.context import AppContext
    from pagecast.db import upgrade

    if state["url"] is not None:
        # Only the commands written over `cli/backend.py` go over the API.
        fail("this command works on this machine's database only, not with --url; run it there.")
    settings = load_settings()
    # The error this command ends with says what a warning logged on the way would (Redis
    # unreachable, say): without a handler, Python would print that warning as a second line.
    if not logging.getLogger().handlers:
        logging.getLogger("pagecast").addHandler(logging.NullHandler())

    async def main() -> T:
        ctx = AppContext(settings)
        try:
            if migrate and ctx.settings.uses_default_database():
                await upgrade(ctx.db)
            return await make(ctx)
        finally:
            await ctx.close()

    try:
        return asyncio.run(main())
    except PagecastError as exc:
        if state["debug"]:
            raise
        fail(exc.cli_message)
    except Exception as exc:  # the CLI is an edge: one line, not a traceback, unless --debug
        if state["debug"]:
            raise
        fail(f"{type(exc).__name__}: {exc}")
    raise AssertionError("unreachable")


def cli_actor() -> Any:
    from pagecast.models import Role
    from pagecast.permissions import ROLE_PERMISSIONS, Actor

    return Actor(
        user_id=None, name="cli", role=Role.ADMIN, permissions=ROLE_PERMISSIONS[Role.ADMIN]
    )


def masked(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def validation_line(exc: Any) -> str:
    """A pydantic error as one line: the field and what is wrong with it, in words."""
    from pagecast.errors import field_path, in_words

    error = exc.errors()[0]
    return f"{field_path(error['loc'])}: {in_words(error)}"
