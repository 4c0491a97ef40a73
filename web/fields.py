"""The rules for the API's request fields, shared by its Pydantic models: bounded numbers,
absolute folders (or ``s3://`` prefixes), webhook URLs, image-id lists, times, each
refusal one line saying what is wrong."""

from __future__ import annotations

import os
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    PlainSerializer,
    Strict,
    ValidationError,
    WithJsonSchema,
    WrapValidator,
)
from pydantic_core import PydanticCustomError

from signdigits.db.models import as_utc
from signdigits.files.objects import parse_object_url
from signdigits.files.paths import is_object_url
from signdigits.web.limits import MAX_ID


def _shown(value: Any) -> str:
    """A client's value in a message: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _bounded(low: float, high: float, *, integer: bool = False, strict: bool = False,
             blank_is_none: bool = True) -> Any:
    """A number in [low, high], or None; every way of missing it is one message.

    Strings are parsed (form fields are strings), booleans refused (JSON ``true`` is no
    threshold), and ``""`` is no value (an empty form field) unless ``blank_is_none`` is
    off. ``strict`` takes an actual JSON integer only (a review's ``"7"`` is refused).
    """
    said = (f"must be {'an integer' if integer else 'a number'} between {low:g} and "
            f"{high:g} (got {{got}})")

    def check(value: Any, handler) -> Any:
        if value is None or (blank_is_none and value == ""):
            return None
        try:
            if isinstance(value, bool):
                raise ValueError
            return handler(value)
        except (ValueError, ValidationError):
            raise PydanticCustomError("number_range", said, {"got": _shown(value)}) from None

    kind = int if integer else float
    inner = Annotated[kind, Strict(), Field(ge=low, le=high)] if strict else Annotated[
        kind, Field(ge=low, le=high)]
    return Annotated[inner | None, WrapValidator(check)]


if TYPE_CHECKING:  # what the validated values are; the checks below are built at run time
    Threshold = float | None
    BatchSize = int | None
    Offset = int | None
    Digit = int | None
else:
    Threshold = _bounded(0, 1)
    BatchSize = _bounded(1, 4096, integer=True)
    Offset = _bounded(0, 10**12, integer=True)  # the jobs list's cursor: "" is the first page
    Digit = _bounded(0, 9, integer=True, strict=True, blank_is_none=False)


def _absolute_folder(value: Any, handler) -> str:
    try:
        folder = handler(value)
    except ValidationError:
        folder = None
    if isinstance(folder, str) and is_object_url(folder):  # a prefix in object storage
        try:
            parse_object_url(folder)
        except ValueError:
            raise PydanticCustomError("object_url", "not an s3://bucket/prefix URL (a bucket "
                                      "of 3-63 letters, digits, dots and hyphens; no empty, "
                                      "'.' or '..' part)") from None
        return folder
    if not isinstance(folder, str) or not folder.startswith("/"):
        raise PydanticCustomError("absolute_path", "must be an absolute path on the server")
    try:
        if b"\x00" in os.fsencode(folder):
            raise ValueError
    except (ValueError, UnicodeEncodeError):  # no file system path holds these
        raise PydanticCustomError("path_characters",
                                  "holds a NUL byte or an unpaired surrogate") from None
    return folder


Folder = Annotated[str, WrapValidator(_absolute_folder)]


def _webhook_url(value: Any) -> str | None:
    """An http(s) URL or nothing (blank); the server checks its host when submitting."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str) or len(value) > 2000 or not value.strip().lower().startswith(
            ("http://", "https://")):
        raise PydanticCustomError("webhook_url", "must be an http:// or https:// URL")
    return value.strip()


Webhook = Annotated[str | None, WrapValidator(lambda value, _handler: _webhook_url(value))]


def _image_ids(text: str) -> list[int]:
    try:
        ids = [int(x) for x in text.split(",") if x.strip()][:1000]
        if not all(0 <= x <= MAX_ID for x in ids):
            raise ValueError
    except ValueError:
        raise PydanticCustomError("image_ids", "must be comma-separated image ids") from None
    return ids


# Documented as the string it arrives as; the handler gets the ids.
if TYPE_CHECKING:
    ImageIds = list[int]  # "1,2,3" as it arrives, the ids once validated
else:
    ImageIds = Annotated[str, AfterValidator(_image_ids)]


def said(code: str, message: str) -> WrapValidator:
    """Whatever is wrong with the value, ``message`` says so (rather than Pydantic's own)."""

    def check(value: Any, handler) -> Any:
        try:
            return handler(value)
        except ValidationError:
            raise PydanticCustomError(code, message) from None

    return WrapValidator(check)


def an_object(data: Any, message: str) -> Any:
    """A model's first check: a JSON body that is not an object gets ``message``."""
    if not isinstance(data, dict):
        raise PydanticCustomError("json_object", message)
    return data


def request_body(by_kind: dict[str, type[BaseModel]]) -> dict:
    """``openapi_extra`` documenting a body the route reads itself: content type -> model."""
    return {"requestBody": {"required": True, "content": {
        kind: {"schema": model.model_json_schema()} for kind, model in by_kind.items()}}}


# As the API has always written times: ISO 8601 with the +00:00 offset (SQLite's are naive).
UtcTime = Annotated[datetime, PlainSerializer(lambda moment: as_utc(moment).isoformat(),
                                              return_type=str, when_used="json"),
                    WithJsonSchema({"type": "string", "format": "date-time"})]


# A JSON true or false, nothing a client might mean as one ("yes", 1, null).
Flag = Annotated[bool, Strict(), said("boolean", "must be true or false")]
