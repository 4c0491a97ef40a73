"""Jobs whose images live in object storage: ``s3://bucket/prefix`` as a job's folder.

The producer lists the prefix (:mod:`producer.objects`) and records each image's key,
relative to the prefix, with its ETag; every worker then reads the objects itself, with
its own credentials, exactly as it reads a folder's files (:class:`files.reading.JobFolder`):
the same caps and the same one-line errors, and an object replaced after the listing is
refused, as a file swapped after the walk is.

Credentials, region and endpoint come from boto3's standard chain (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_REGION``, ``AWS_ENDPOINT_URL``,
``AWS_PROFILE`` and the files under ``~/.aws``, instance and container roles): nothing of
them is written to the database, a message or a log. boto3 is imported on first use (the
``s3`` extra), never by a process that reads only folders.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from signdigits.files.paths import is_object_url
from signdigits.files.reading import ImageError

SCHEME = "s3://"
# Bucket names as S3 allows them (https://docs.aws.amazon.com/AmazonS3/latest/userguide/
# bucketnamingrules.html), dots included, upper case and underscores too for the older
# buckets and S3-compatible servers that allow them.
_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,61}[A-Za-z0-9]")
# Read first from an object larger than this: enough for every format's header (a
# phone's JPEG puts its EXIF before the size), so a decompression bomb is refused by its
# header before the rest of its body is fetched.
HEADER_BYTES = 64 * 1024


class StorageUnavailable(RuntimeError):
    """The object storage did not answer (down, unreachable, 5xx): waited out, as the
    database's outages are, never an image's error."""


class StorageRefused(RuntimeError):
    """The storage answered but refuses this process (credentials, no such bucket): the
    batch's error, retried and then given up as any failing batch is."""


class StorageNotConfigured(StorageRefused):
    """This process cannot use object storage at all (no boto3, no credentials, a profile
    that is not there): its own set-up, not the job's. A worker passes such a batch on
    to another worker (worker.tasks) before counting a try of it."""


@dataclass(frozen=True)
class ObjectLocation:
    bucket: str
    prefix: str  # "" for the whole bucket, else ending in "/"

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.prefix}"

    def key(self, relative: str) -> str:
        return self.prefix + relative

    def contains(self, other: ObjectLocation) -> bool:
        return self.bucket == other.bucket and other.prefix.startswith(self.prefix)


def parse_object_url(text: str | Path) -> ObjectLocation:
    """``s3://bucket/prefix`` as a location; ValueError with one line if it cannot be one.

    The prefix is a folder: ``s3://b/photos`` lists ``photos/...``, never ``photos2/``.
    A ``.`` or ``..`` part, an empty part or a NUL byte is refused: some S3-compatible
    servers resolve dots in a path, which would take a reader outside the prefix.
    """
    raw = str(text)
    rest = raw[len("s3://"):] if raw.lower().startswith("s3://") else raw[len("s3:/"):]
    bucket, _, prefix = rest.partition("/")
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise ValueError(f"{raw!r}: not an s3://bucket/prefix URL (the bucket name is "
                         "3-63 letters, digits, dots and hyphens)")
    prefix = prefix.strip("/")
    if prefix:
        if not key_is_plain(prefix):
            raise ValueError(f"{raw!r}: the prefix has an empty, '.' or '..' part or a NUL "
                             "byte (refused)")
        prefix += "/"
    return ObjectLocation(bucket, prefix)


def key_is_plain(relative: str) -> bool:
    """A key (or a part of one) with no empty, ``.`` or ``..`` part, NUL or unpaired
    surrogate: one that names the same object on every server."""
    try:
        relative.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in relative and all(
        part not in ("", ".", "..") for part in relative.split("/"))


def object_roots(allowed_roots: list[Path]) -> list[ObjectLocation]:
    """The ``s3://`` entries of SIGNDIGITS_ALLOWED_ROOTS (the settings check each parses)."""
    return [parse_object_url(root) for root in allowed_roots if is_object_url(root)]


def objects_allowed(location: ObjectLocation, allowed_roots: list[Path]) -> bool:
    """No roots configured, or the location lies under one of their ``s3://`` entries
    (folder entries never admit a bucket, nor bucket entries a folder)."""
    return not allowed_roots or any(root.contains(location)
                                    for root in object_roots(allowed_roots))


NO_CREDENTIALS = ("no S3 credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
                  "AWS_PROFILE)")
_clients: dict[int, Any] = {}
_clients_lock = threading.Lock()


def s3_client() -> Any:
    """This process's S3 client (boto3's clients are thread-safe; made after a fork)."""
    pid = os.getpid()
    with _clients_lock:
        client = _clients.get(pid)
        if client is None:
            client = _clients[pid] = _new_client()
        return client


def _new_client() -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise StorageNotConfigured("reading s3:// needs boto3: install the s3 extra "
                             "(pip install 'signdigits[s3]'; scripts/setup installs it)"
                             ) from None
    import botocore.exceptions

    # Short connect timeout and few retries of boto3's own: an outage is waited out by the
    # worker's rule (worker.retries), which logs it, rather than inside one request.
    config = Config(connect_timeout=5, read_timeout=30, max_pool_connections=32,
                    retries={"max_attempts": 2, "mode": "standard"})
    try:
        session = boto3.session.Session()
        if session.get_credentials() is None:  # else every request fails the same way
            raise StorageNotConfigured(NO_CREDENTIALS)
        return session.client("s3", config=config)
    except botocore.exceptions.BotoCoreError as exc:  # a profile that is not there, say
        raise StorageNotConfigured(f"object storage settings: {exc}") from None


def storage_error(exc: Exception) -> Exception:
    """A boto3 failure as ours: ImageError (that object's), StorageRefused or
    StorageUnavailable. Its message names the error code, never a credential."""
    import botocore.exceptions as errors

    if isinstance(exc, errors.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        message = str(error.get("Message", "")).strip() or code
        if code in ("NoSuchKey", "404", "NotFound"):
            return ImageError("object not found")
        if code in ("PreconditionFailed", "412") or status == 412:
            return ImageError("object replaced after submit (its ETag changed; refused)")
        if code == "AccessDenied":
            return ImageError("access denied")
        if status >= 500 or code in ("SlowDown", "ServiceUnavailable", "InternalError",
                                     "RequestTimeout"):
            return StorageUnavailable(f"{code or status}: {message}")
        return StorageRefused(f"{code or status}: {message}")
    if isinstance(exc, errors.NoCredentialsError | errors.PartialCredentialsError):
        return StorageNotConfigured(f"{NO_CREDENTIALS}: {exc}")
    if isinstance(exc, errors.HTTPClientError | errors.ConnectionError
                  | errors.IncompleteReadError | errors.ResponseStreamingError):
        return StorageUnavailable(f"{exc.__class__.__name__}: {exc}")
    if isinstance(exc, errors.BotoCoreError):
        return StorageRefused(f"{exc.__class__.__name__}: {exc}")
    return exc


class JobObjects:
    """A job's prefix, read object by object as :class:`JobFolder` reads files."""

    def __init__(self, root: str, *, allowed_roots: list[Path]) -> None:
        try:
            self.location: ObjectLocation | None = parse_object_url(root)
        except ValueError:
            self.location = None  # every read says so: one image's error each
        self.allowed = self.location is not None and objects_allowed(self.location,
                                                                     allowed_roots)

    def read(self, relative: str, *, max_bytes: int, etag: str | None,
             check_header: Any = None) -> bytes:
        """The object's bytes, refused past ``max_bytes`` by its Content-Length before any
        byte of it is read; with ``etag``, only the object the listing saw (a conditional
        GET: one that was replaced since answers 412). ``check_header(first_bytes)`` may
        refuse a large object by its first :data:`HEADER_BYTES` (the pixel cap)."""
        if self.location is None:
            raise ImageError("the job's folder is not an s3://bucket/prefix URL (refused)")
        if not self.allowed:
            raise ImageError("the job's bucket is outside SIGNDIGITS_ALLOWED_ROOTS (refused)")
        if not key_is_plain(relative):
            raise ImageError("key leads outside the job's prefix (refused)")
        request = {"Bucket": self.location.bucket, "Key": self.location.key(relative)}
        if etag:
            request["IfMatch"] = etag
        client = s3_client()
        try:
            response = client.get_object(**request)
        except Exception as exc:  # noqa: BLE001 - sorted into ours, or raised as it was
            raise storage_error(exc) from None
        body = response["Body"]
        try:
            size = int(response.get("ContentLength", 0))
            if size > max_bytes:
                raise ImageError(f"file is {size:,} bytes, over the {max_bytes:,}-byte cap")
            if size == 0:
                raise ImageError("empty file (0 bytes)")
            if size <= HEADER_BYTES or check_header is None:
                data = body.read()
            else:
                head = body.read(HEADER_BYTES)
                check_header(head)
                data = head + body.read()
        except ImageError:
            body.close()  # what is left of the body is never fetched
            raise
        except Exception as exc:  # noqa: BLE001 - a connection lost mid-body, say
            body.close()
            raise storage_error(exc) from None
        if len(data) != size:
            raise StorageUnavailable(f"object {relative!r}: {len(data)} of {size} bytes read")
        return data
