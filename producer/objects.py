"""List a prefix in object storage for images, streaming, as the folder walk does.

S3 lists keys a page (up to 1,000) at a time, in the order of their UTF-8 bytes: the
pages are consumed as they come, so a million keys are never in memory at once, and a
second listing of an unchanged prefix yields the same sequence (what ``resume`` relies
on). Each image is yielded with its ETag, which the manifest keeps.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

from signdigits.files.objects import (
    ObjectLocation,
    StorageRefused,
    StorageUnavailable,
    key_is_plain,
    s3_client,
    storage_error,
)
from signdigits.files.paths import is_image_name
from signdigits.files.reading import ImageError
from signdigits.producer.scan import FolderError, Unreachable


class ListedObject(NamedTuple):
    path: str  # the key, relative to the job's prefix
    etag: str


def scan_objects(location: ObjectLocation, *, client: Any = None) -> Iterator[
        ListedObject | Unreachable]:
    """Yield the images under ``location``: every key below the prefix whose last part
    is an image name; keys with a hidden part (``.``-prefixed, ``..`` too) are skipped,
    as hidden files and folders are. A key no server reads the same way (an empty part,
    ``a//b.jpg``) is yielded as :class:`Unreachable`, an error row. Raises
    :class:`FolderError` with one line when the storage refuses or cannot be reached."""
    pages = _pages(location, client or _client(location))
    for page in pages:
        for item in page.get("Contents", ()):
            relative = item["Key"][len(location.prefix):]
            parts = relative.split("/")
            if any(part.startswith(".") for part in parts) or not is_image_name(parts[-1]):
                continue
            if not key_is_plain(relative):
                yield Unreachable(relative, "key with an empty part (refused: servers read "
                                            "it differently)")
                continue
            yield ListedObject(relative, item["ETag"])


def _client(location: ObjectLocation) -> Any:
    try:
        return s3_client()
    except StorageRefused as exc:
        raise FolderError(f"{location}: {exc}") from None


def _pages(location: ObjectLocation, client: Any) -> Iterator[dict]:
    """The listing's pages, each storage error as one FolderError line."""
    paginator = client.get_paginator("list_objects_v2")
    pages = iter(paginator.paginate(Bucket=location.bucket, Prefix=location.prefix))
    while True:
        try:
            page = next(pages)
        except StopIteration:
            return
        except Exception as exc:  # noqa: BLE001 - sorted into one line, or raised as it was
            raise FolderError(f"{location}: {_reason(storage_error(exc))}") from None
        yield page


def _reason(exc: Exception) -> str:
    if isinstance(exc, StorageUnavailable):
        return f"cannot reach the object storage ({exc})"
    if isinstance(exc, StorageRefused):
        code = str(exc).split(":", 1)[0]
        if code == "NoSuchBucket":
            return "no such bucket"
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
                    "InvalidToken", "AuthorizationHeaderMalformed"):
            return (f"the object storage refused the credentials ({exc}); check "
                    "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE")
        return f"the object storage refused the listing ({exc})"
    if isinstance(exc, ImageError):  # AccessDenied: the credentials may not list it
        return f"cannot list it: {exc}"
    raise exc
