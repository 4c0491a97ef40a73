"""One validated settings object, read from ``SIGNDIGITS_*`` environment variables.

Every process (CLI, producer, worker, Flower wrapper) reads its configuration here and
nowhere else, so a value documented in the README is the value the code uses.
"""

from __future__ import annotations

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


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SIGNDIGITS_", extra="ignore")

    environment: str = Field("development", description="development or production")
    broker_url: str | None = Field(
        None, description="Redis URL; unset means `run` starts an embedded server"
    )
    database_url: str = Field("sqlite:///signdigits.db", description="SQLAlchemy URL")
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
        return sqlalchemy_url(url)

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Settings:
        if self.environment == "development":
            return self
        if self.flower_basic_auth is not None:
            password = self.flower_basic_auth.partition(":")[2]
            if password.lower() in PLACEHOLDER_SECRETS:
                raise ValueError("SIGNDIGITS_FLOWER_BASIC_AUTH holds a placeholder password")
        return self

    # --- the web application and HTTP API (`signdigits serve`) ---
    web_auth: str | None = Field(
        None, description="user:password the web asks for; required outside development"
    )
    web_token: str | None = Field(None, description="bearer token the web also accepts")
    upload_dir: Path | None = Field(
        None, description="where uploaded jobs are stored; unset: beside the database"
    )
    max_upload_bytes: int = Field(
        512 * 1024 * 1024, ge=1, description="largest request body the web accepts"
    )
    max_unpacked_bytes: int = Field(
        2 * 1024 * 1024 * 1024, ge=1, description="most bytes one upload's zips may unpack to"
    )
    predict_timeout: float = Field(
        30.0, gt=0, description="seconds POST /api/predict waits for a worker"
    )
    flower_url: str | None = Field(None, description="Flower's address, for links from the web")


@lru_cache
def get_settings() -> Settings:
    return Settings()
