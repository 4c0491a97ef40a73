"""One validated settings object, read from ``SIGNDIGITS_*`` environment variables.

Every process (CLI, producer, worker, Flower wrapper) reads its configuration here and
nowhere else, so a value documented in the README is the value the code uses.
"""

from __future__ import annotations

import contextlib
import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Decoding a bigger image could take gigabytes; preprocess_image refuses it from the header.
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000
PLACEHOLDER_SECRETS = {"changeme", "change-me", "changethis", "secret", "password", ""}


def sqlalchemy_url(url: str) -> str:
    """psycopg 3 is the driver we ship; a plain postgresql:// URL would ask for psycopg2."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def default_database_url() -> str:
    """SQLite in the user's data folder: one file for every process this user starts.

    ``$XDG_DATA_HOME/signdigits/signdigits.db`` (``~/.local/share/signdigits/`` when unset).
    A path relative to the working directory would give a worker started in another
    folder a database of its own, empty, and every batch sent to it would find no job.
    """
    data_home = os.environ.get("XDG_DATA_HOME", "")
    base = Path(data_home) if os.path.isabs(data_home) else Path.home() / ".local" / "share"
    folder = base / "signdigits"
    # If this fails, SQLite's own error on connecting names the file it could not open.
    with contextlib.suppress(OSError):
        folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'signdigits.db'}"


def absolute_sqlite_url(url: str) -> str:
    """A SQLite URL with a relative path made absolute (against this working directory).

    Every process then logs and prints the one file it really opens, so two processes
    that were given the same relative URL in different folders are told apart at once.
    """
    scheme, sep, rest = url.partition(":///")
    if not sep or scheme.split("+")[0] != "sqlite" or rest.startswith("/"):
        return url
    path, query_sep, query = rest.partition("?")
    if not path or path == ":memory:" or path.startswith("file:"):
        return url
    return f"{scheme}:///{os.path.abspath(path)}{query_sep}{query}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SIGNDIGITS_", extra="ignore")

    environment: str = Field("development", description="development or production")
    broker_url: str | None = Field(
        None, description="Redis URL; unset means `run` starts an embedded server"
    )
    database_url: str = Field(
        default_factory=default_database_url,
        description="SQLAlchemy URL; unset: SQLite in $XDG_DATA_HOME/signdigits",
    )
    model_path: Path | None = Field(None, description="model artifact; unset: the shipped one")
    threshold: float | None = Field(
        None, ge=0.0, le=1.0, description="default confidence threshold; unset: the model's"
    )
    batch_size: int = Field(128, ge=1, le=4096, description="images per Celery task")
    concurrency: int = Field(2, ge=1, le=256, description="worker processes per worker")
    visibility_timeout: int = Field(
        3600, ge=5, description="seconds before Redis redelivers an unacknowledged task"
    )
    max_file_bytes: int = Field(20 * 1024 * 1024, ge=1, description="larger files get an error")
    max_image_pixels: int = Field(
        DEFAULT_MAX_IMAGE_PIXELS, ge=1,
        description="images with more pixels are refused before decoding",
    )
    inline: bool = Field(False, description="ship image bytes inside the messages")
    inline_max_file_bytes: int = Field(
        5 * 1024 * 1024, ge=1, description="cap per file when image bytes travel in messages"
    )
    allowed_roots: list[Path] = Field(
        default_factory=list, description="folders a job's root must lie in (JSON list)"
    )
    decode_threads: int = Field(1, ge=1, le=64, description="decode threads per worker process")
    tf_threads: int = Field(1, ge=0, le=64, description="TensorFlow threads per worker process")
    stall_seconds: int = Field(120, ge=1, description="no progress this long: job is stalled")
    max_attempts: int = Field(5, ge=1, description="tries per batch before its rows get errors")
    flower_basic_auth: str | None = Field(None, description="user:password for Flower")

    @field_validator("database_url")
    @classmethod
    def _postgres_driver(cls, url: str) -> str:
        return absolute_sqlite_url(sqlalchemy_url(url))

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Settings:
        if self.environment == "development":
            return self
        if self.flower_basic_auth is not None:
            password = self.flower_basic_auth.partition(":")[2]
            if password.lower() in PLACEHOLDER_SECRETS:
                raise ValueError("SIGNDIGITS_FLOWER_BASIC_AUTH holds a placeholder password")
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
