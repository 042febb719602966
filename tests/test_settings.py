"""Settings: environment precedence, the secret key file, and the generated docs."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pagecast.settings import Settings, env_names, normalise_database_url, render_settings_doc

DOC = Path(__file__).parent.parent / "docs" / "settings.md"


def test_settings_doc_matches_the_settings() -> None:
    assert DOC.read_text() == render_settings_doc(), (
        "docs/settings.md is stale: run `uv run pagecast config docs > docs/settings.md`"
    )


def test_every_setting_has_a_description() -> None:
    missing = [name for name, field in Settings.model_fields.items() if not field.description]
    assert missing == []


def test_prefixed_variable_wins_over_conventional_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://plain/db")
    monkeypatch.setenv("PAGECAST_DATABASE_URL", "postgresql://prefixed/db")
    monkeypatch.setenv("REDIS_URL", "redis://plain:6379/0")
    settings = Settings(_env_file=None)
    assert settings.database_url == "postgresql://prefixed/db"
    assert settings.redis_url == "redis://plain:6379/0"


def test_conventional_database_url_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PAGECAST_DATABASE_URL", raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@db.example:5432/app")
    assert (
        Settings(_env_file=None).resolved_database_url()
        == "postgresql+asyncpg://u:p@db.example:5432/app"
    )


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("sqlite:///x.db", "sqlite+aiosqlite:///x.db"),
    ],
)
def test_database_urls_are_mapped_to_async_drivers(given: str, expected: str) -> None:
    assert normalise_database_url(given) == expected


def test_default_database_is_sqlite_in_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PAGECAST_DATABASE_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    settings = Settings(_env_file=None, data_dir=tmp_path)
    assert (
        settings.resolved_database_url() == f"sqlite+aiosqlite:///{tmp_path.resolve()}/pagecast.db"
    )


def test_graph_defaults() -> None:
    settings = Settings(_env_file=None)
    assert (settings.graph_api_url, settings.graph_api_version) == (
        "https://graph.facebook.com",
        "v25.0",
    )


def test_secret_key_is_generated_once_with_mode_0600(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PAGECAST_SECRET_KEY", raising=False)
    settings = Settings(_env_file=None, data_dir=tmp_path / "data")
    first = settings.resolved_secret_key()
    path = tmp_path / "data" / "secret.key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert Settings(_env_file=None, data_dir=tmp_path / "data").resolved_secret_key() == first
    assert len(first) >= 32


def test_secret_key_setting_is_used_and_no_file_written(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path, secret_key="from-env")
    assert settings.resolved_secret_key() == b"from-env"
    assert not (tmp_path / "secret.key").exists()


def test_env_names_resolve_a_field_by_its_name_or_an_alias() -> None:
    both = ["PAGECAST_DATABASE_URL", "DATABASE_URL"]
    assert env_names("database_url") == both
    assert env_names("PAGECAST_DATABASE_URL") == both  # how a validation error names it
    assert env_names("worker_nice") == ["PAGECAST_WORKER_NICE"]
    assert env_names("no_such_setting") == []
