"""One validated settings object, read from ``SIGNDIGITS_*`` environment variables.

Every process (CLI, producer, worker, Flower wrapper) reads its configuration here and
nowhere else, so a value documented in the README is the value the code uses.
"""

from __future__ import annotations

import os
import sys
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from signdigits.config.messages import (  # noqa: F401  (re-exported: callers import them here)
    ENV_PREFIX,
    describe_fields_error,
    describe_unparsable,
    masked_password,
    raw_variable,
    shown_value,
)
from signdigits.config.network import is_host_pattern, redis_url_problem

# Decoding a bigger image could take gigabytes; preprocess_image refuses it from the header.
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000
PLACEHOLDER_SECRETS = {"changeme", "change-me", "changethis", "secret", "password", ""}


# A bound no real timeout reaches; far past it timedelta and socket timeouts overflow.
_THIRTY_DAYS = 30 * 24 * 3600
BROKER_SCHEMES = ("redis", "rediss", "redis+socket", "sentinel")
# Renamed variables still read, each with a one-line warning: old name -> new name.
DEPRECATED_VARIABLES = {"SIGNDIGITS_TF_THREADS": "SIGNDIGITS_MODEL_THREADS"}


class SettingsInvalid(ValueError):
    """A ``SIGNDIGITS_*`` variable holds a value no command can use; ``str`` is one line
    naming the variable, the value (passwords masked) and what is expected."""


def sqlalchemy_url(url: str) -> str:
    """psycopg 3 is the driver we ship; a plain postgresql:// URL would ask for psycopg2."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def data_folder() -> Path:
    """``$XDG_DATA_HOME/signdigits`` (``~/.local/share/signdigits`` when unset): this user's.

    Not made here: reading the settings must create nothing (db.session and the uploads
    make what they write).
    """
    data_home = os.environ.get("XDG_DATA_HOME", "")
    base = Path(data_home) if os.path.isabs(data_home) else Path.home() / ".local" / "share"
    return base / "signdigits"


def default_database_url() -> str:
    """SQLite in the user's data folder: one file for every process this user starts.

    A path relative to the working directory would give a worker started in another
    folder a database of its own, empty, and every batch sent to it would find no job.
    """
    return f"sqlite:///{data_folder() / 'signdigits.db'}"


def default_upload_dir() -> Path:
    """Uploads without a SQLite file to sit beside: the user's data folder, not ``./uploads``
    of wherever `serve` started (a git checkout's, say, where nothing ignores them)."""
    return data_folder() / "uploads"


def default_models_dir() -> Path:
    """The registry's artifacts: one folder per user, whatever folder a command starts in."""
    return data_folder() / "models"


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


def is_placeholder(credential: SecretStr | None, *, pair: bool = True) -> bool:
    """Whether a secret's password is a well-known stand-in (``changeme``, empty...).

    The password of ``user:password`` when ``pair``, else the whole secret (a token).
    """
    if credential is None:
        return False
    value = credential.get_secret_value()
    password = value.partition(":")[2] if pair else value
    return password.lower() in PLACEHOLDER_SECRETS


class Settings(BaseSettings):
    # populate_by_name: code and tests say model_threads=..., the environment either name.
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore",
                                      populate_by_name=True)

    environment: Literal["development", "production"] = Field(
        "development", description="development or production")
    broker_url: str | None = Field(
        None, description="Redis URL; unset means `run` starts an embedded server"
    )
    database_url: str = Field(
        default_factory=default_database_url,
        description="SQLAlchemy URL; unset: SQLite in $XDG_DATA_HOME/signdigits",
    )
    model_path: Path | None = Field(
        None, description="model artifact served when none is promoted; unset: the shipped one")
    models_dir: Path | None = Field(
        None, description="the model registry's artifact folder, which every worker reads; "
        "unset: $XDG_DATA_HOME/signdigits/models")
    hand_models_dir: Path | None = Field(
        None, description="folder of the hand models; unset: <python prefix>/share/signdigits/"
        "hands, where `signdigits fetch-hand-models` puts them")
    threshold: float | None = Field(
        None, ge=0.0, le=1.0, description="default confidence threshold; unset: the model's"
    )
    batch_size: int = Field(128, ge=1, le=4096, description="images per Celery task")
    concurrency: int = Field(2, ge=1, le=256, description="worker processes per worker")
    visibility_timeout: int = Field(
        3600, ge=5, le=_THIRTY_DAYS,
        description="seconds before Redis redelivers an unacknowledged task"
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
        default_factory=list,
        description="folders (or s3://bucket/prefix) a job's root must lie in (JSON list)",
    )
    decode_threads: int = Field(1, ge=1, le=64, description="decode threads per worker process")
    max_hands: int = Field(8, ge=1, le=64,
                           description="hands read per photo; a photo with more is flagged")
    model_threads: int = Field(
        1, ge=0, le=64, description="model threads per worker process, either runtime (0: all)",
        validation_alias=AliasChoices("SIGNDIGITS_MODEL_THREADS", "SIGNDIGITS_TF_THREADS"),
    )
    runtime: Literal["onnx", "tensorflow"] = Field(
        "onnx", description="what runs the model: onnx (ONNX Runtime) or tensorflow (comparison)"
    )
    stall_seconds: int = Field(120, ge=1, le=_THIRTY_DAYS,
                               description="no progress this long: job is stalled")
    max_attempts: int = Field(5, ge=1, description="tries per batch before its rows get errors")
    flower_basic_auth: SecretStr | None = Field(None, description="user:password for Flower")
    # The producer: how much of an --inline job may wait in the broker at once.
    inline_max_queued_bytes: int = Field(
        256 * 1024 * 1024, ge=1,
        description="an --inline producer waits while its queued messages hold more bytes",
    )

    @field_validator("environment", mode="before")
    @classmethod
    def _any_case(cls, value: object) -> object:
        # "Production" meant production before the choice was a fixed one; it still does.
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("model_path", "hand_models_dir", "upload_dir", "models_dir", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # An empty path is the current folder: a model or uploads wherever `serve` started.
        return None if value == "" else value

    @field_validator("allowed_roots")
    @classmethod
    def _absolute_paths(cls, roots: list[Path]) -> list[Path]:
        for root in roots:
            text = str(root)
            if text.lower().startswith("s3:/"):  # a bucket or prefix (files.objects reads it)
                bucket = text[len("s3:/"):].split("/", 1)[0]
                if not 3 <= len(bucket) <= 63 or "\x00" in text:
                    raise PydanticCustomError("allowed_roots", "expected s3://bucket/prefix")
                continue
            if "\x00" in text or not root.is_absolute():
                # Relative, each process would resolve it against its own working folder.
                raise PydanticCustomError("allowed_roots",
                                          "expected absolute paths, without NUL bytes")
            try:
                os.fsencode(text)
            except UnicodeEncodeError:
                raise PydanticCustomError("allowed_roots", "a path no file system can hold"
                                          ) from None
        return roots

    @field_validator("web_hosts", "webhook_allowed_hosts", mode="before")
    @classmethod
    def _host_list(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            import json

            try:
                return json.loads(text)
            except ValueError:
                raise PydanticCustomError("web_hosts", "expected a JSON list or a comma "
                                          "list of host names") from None
        return [name.strip() for name in text.split(",") if name.strip()]

    @field_validator("web_hosts")
    @classmethod
    def _host_names(cls, names: list[str]) -> list[str]:
        for name in names:
            if not is_host_pattern(name):
                raise PydanticCustomError(
                    "web_hosts", "expected host names such as signdigits.example.com or "
                    "*.example.com, without a port; not '{name}'", {"name": name})
        return [name.lower() for name in names]

    @field_validator("broker_url")
    @classmethod
    def _redis_url(cls, url: str | None) -> str | None:
        if url is None or not url.strip():
            return None  # an empty variable means unset, as in a compose file's ${X:-}
        scheme = url.partition("://")[0].lower() if "://" in url else ""
        if scheme not in BROKER_SCHEMES:
            raise PydanticCustomError(
                "broker_url", "expected a Redis URL such as redis://:password@host:6379/0 "
                "(schemes: {schemes})", {"schemes": ", ".join(BROKER_SCHEMES)})
        if scheme in ("redis", "rediss"):
            problem = redis_url_problem(url)
            if problem:
                raise PydanticCustomError("broker_url", problem)
        return url

    @field_validator("database_url")
    @classmethod
    def _sqlite_or_postgresql(cls, url: str) -> str:
        try:
            return checked_database_url(url)
        except ValueError as exc:
            raise PydanticCustomError("database_url", str(exc)) from None

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Settings:
        if self.environment == "development":
            return self
        if is_placeholder(self.flower_basic_auth):
            raise PydanticCustomError(
                "placeholder", "SIGNDIGITS_FLOWER_BASIC_AUTH holds a placeholder password "
                "(SIGNDIGITS_ENVIRONMENT={environment}: set a real one)",
                {"environment": self.environment})
        return self

    # --- the web application and HTTP API (`signdigits serve`) ---
    web_auth: SecretStr | None = Field(
        None, description="user:password the web asks for; required outside development"
    )
    web_token: SecretStr | None = Field(None, description="bearer token the web also accepts")
    upload_dir: Path | None = Field(
        None, description="where uploaded jobs are stored; unset: beside a SQLite database, "
        "else $XDG_DATA_HOME/signdigits/uploads")
    # NoDecode: a comma list is read as well as a JSON one (see _host_list).
    web_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="host names the web answers to besides its "
        "address (JSON list or comma list)")
    # True sends uploaded photos inside the messages, for workers that cannot see the
    # upload folder (another machine, another container); it caps each photo at
    # SIGNDIGITS_INLINE_MAX_FILE_BYTES. `serve` with its embedded workers sets it false.
    upload_inline: bool = Field(
        True, description="send uploaded images inside the messages (workers can't see them)"
    )
    max_upload_bytes: int = Field(
        512 * 1024 * 1024, ge=1, description="largest request body the web accepts"
    )
    max_unpacked_bytes: int = Field(
        2 * 1024 * 1024 * 1024, ge=1, description="most bytes one upload's zips may unpack to"
    )
    predict_timeout: float = Field(
        30.0, gt=0, le=3600, description="seconds POST /api/predict waits for a worker"
    )
    # Each waiting prediction holds a Redis connection (not a thread): past this many,
    # the next is a 503 at once rather than a queue that only grows while workers are down.
    predict_max_waiting: int = Field(
        100, ge=1, le=10_000, description="predictions POST /api/predict lets wait at once"
    )
    flower_url: str | None = Field(None, description="Flower's address, for links from the web")
    metrics_token: SecretStr | None = Field(
        None, description="bearer token GET /metrics also accepts (a Prometheus scraper's)")

    # --- the webhook a job calls when it ends (docs/webhooks.md) ---
    webhook_url: str | None = Field(
        None, description="webhook of jobs submitted without one (http or https)")
    webhook_secret: SecretStr | None = Field(
        None, description="whsec_<base64> key the webhooks are signed with (Standard Webhooks)")
    # NoDecode: a comma list is read as well as a JSON one (see _host_list).
    webhook_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="the only hosts webhooks may call (JSON list or "
        "comma list of names, *.domain or addresses); unset: any public host")
    webhook_deadline: int = Field(
        24 * 3600, ge=1, le=_THIRTY_DAYS,
        description="seconds after a job ends that its webhook is retried for")

    @field_validator("webhook_url", mode="before")
    @classmethod
    def _webhook_url(cls, value: object) -> object:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        from urllib.parse import urlsplit

        if not isinstance(value, str) or urlsplit(value).scheme not in ("http", "https"):
            raise PydanticCustomError("webhook_url", "expected an http:// or https:// URL")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        from signdigits.config.webhooks import signing_key

        try:
            signing_key(value.get_secret_value())
        except ValueError as exc:
            raise PydanticCustomError("webhook_secret", str(exc)) from None
        return value

    @property
    def registry_dir(self) -> Path:
        """Where registered models' files live (SIGNDIGITS_MODELS_DIR, or its default)."""
        return (self.models_dir or default_models_dir()).absolute()


@lru_cache
def get_settings() -> Settings:
    """The settings from the environment; :class:`SettingsInvalid` (one line) if one is bad."""
    for old, new in DEPRECATED_VARIABLES.items():
        if raw_variable(old) is not None:
            print(f"warning: {old} is deprecated; use {new} (it is read for now)",
                  file=sys.stderr)
    try:
        return Settings()
    except ValidationError as exc:
        raise SettingsInvalid(describe_validation_error(exc)) from None
    except SettingsError as exc:
        raise SettingsInvalid(describe_unparsable(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    """Each failed field as ``SIGNDIGITS_X='value': what is expected``, joined on one line."""
    return describe_fields_error(exc, Settings.model_fields)


def checked_database_url(url: str) -> str:
    """``url`` as SQLAlchemy takes it (SQLite paths absolute), or ValueError saying why not.

    The setting's own check, and that of a command's ``--database``.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    expected = "expected sqlite:///path/to/file.db or postgresql://user:password@host/database"
    url = sqlalchemy_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError(expected) from None
    # The name alone: asking SQLAlchemy for the dialect would import (or fail to find) it.
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "sqlite" and driver in ("", "pysqlite"):
        if parsed.host or not parsed.database or parsed.database == ":memory:":
            # An in-memory database would lose every job when the command exits.
            raise ValueError(expected + " (a file path)")
    elif backend != "postgresql" or driver != "psycopg":
        raise ValueError(expected)
    return absolute_sqlite_url(url)
