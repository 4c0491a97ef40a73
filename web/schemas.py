"""What the HTTP API takes and gives, as Pydantic models: its checks and its ``/docs``.

Responses are built from the database's rows and summaries (``JobOut.of(summary)``,
``ImageOut.of(image, review)``, ``ReviewOut.model_validate(review)``); the routes declare
them as ``response_model``. Requests are validated by the models here, each error one
line saying what is wrong (the application's validation handler joins field and message).
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import UploadFile
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    Strict,
    ValidationError,
    WithJsonSchema,
    WrapValidator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from signdigits.db.export import final_digit, final_digits, hands_list, reviewed_digit
from signdigits.db.models import Image, ImageStatus, JobState, as_utc
from signdigits.db.progress import JobSummary
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


def _said(code: str, message: str) -> WrapValidator:
    """Whatever is wrong with the value, ``message`` says so (rather than Pydantic's own)."""

    def check(value: Any, handler) -> Any:
        try:
            return handler(value)
        except ValidationError:
            raise PydanticCustomError(code, message) from None

    return WrapValidator(check)


def _an_object(data: Any, message: str) -> Any:
    """A model's first check: a JSON body that is not an object gets ``message``."""
    if not isinstance(data, dict):
        raise PydanticCustomError("json_object", message)
    return data


class SubmitFolder(BaseModel):
    """`application/json`: a folder on the server (within `SIGNDIGITS_ALLOWED_ROOTS`)."""

    folder: Folder = Field(description="absolute path of a folder on the server")
    threshold: Threshold = Field(None, description="unset: the model's default")
    batch_size: BatchSize = Field(None, description="images per batch; unset: the setting's")

    @model_validator(mode="before")
    @classmethod
    def an_object(cls, data: Any) -> Any:
        # A missing folder is checked as a folder: "must be an absolute path on the server"
        # tells the client what to send, where "Field required" only that something lacks.
        return {"folder": None, **_an_object(data, 'send a JSON object: {"folder": "/abs/path"}')}


class SubmitUpload(BaseModel):
    """`multipart/form-data`: images and .zip archives of them; their paths are kept."""

    files: list[UploadFile] = Field(description="images or .zip archives (repeat the field)")
    threshold: Threshold = Field(None, description="unset: the model's default")


_REVIEW = ('send {"digit": 0-9} or {"unusable": true}; for one hand of several, '
           '{"hand": 0, "digit": 0-9} or {"hand": 0, "not_a_hand": true}')
_Flag = Annotated[bool, Strict(), _said("boolean", "must be true or false")]


class ReviewIn(BaseModel):
    """A person's answer: `{"digit": 7}`, or `{"unusable": true}`; for one hand of a photo
    of several, `{"hand": 1, "digit": 3}` or `{"hand": 1, "not_a_hand": true}`."""

    digit: Digit = Field(None, description="the digit the photo (or the hand) shows")
    unusable: _Flag = Field(False, description="the photo shows none")
    hand: Annotated[int | None, Strict(), Field(ge=0, le=63),
                    _said("integer", "must be a hand's place, 0 to 63")] = Field(
        None, description="the hand's place in reading order, from 0 (left)")
    not_a_hand: _Flag = Field(False, description="with hand: what was found is no hand")

    @model_validator(mode="before")
    @classmethod
    def an_object(cls, data: Any) -> Any:
        return _an_object(data, _REVIEW)

    @model_validator(mode="after")
    def one_answer(self) -> ReviewIn:
        if self.hand is not None:
            if self.unusable:
                raise PydanticCustomError("review_answer",
                                          "unusable is for the whole photo: send it without hand")
            if self.not_a_hand == (self.digit is not None):
                raise PydanticCustomError("review_answer",
                                          "with hand, send a digit or not_a_hand (one of them)")
            return self
        if self.not_a_hand:
            raise PydanticCustomError("review_answer", "not_a_hand needs the hand's place")
        if self.unusable and self.digit is not None:
            raise PydanticCustomError("review_answer", "send a digit or unusable, not both")
        if not self.unusable and self.digit is None:
            raise PydanticCustomError("review_answer", _REVIEW)
        return self


def request_body(by_kind: dict[str, type[BaseModel]]) -> dict:
    """``openapi_extra`` documenting a body the route reads itself: content type -> model."""
    return {"requestBody": {"required": True, "content": {
        kind: {"schema": model.model_json_schema()} for kind, model in by_kind.items()}}}


# As the API has always written times: ISO 8601 with the +00:00 offset (SQLite's are naive).
UtcTime = Annotated[datetime, PlainSerializer(lambda moment: as_utc(moment).isoformat(),
                                              return_type=str, when_used="json"),
                    WithJsonSchema({"type": "string", "format": "date-time"})]


class JobOut(BaseModel):
    """A job with its counts: what the API, the events and the pages all show."""

    id: str
    state: JobState
    total_images: int
    done: int
    errors: int
    below_threshold: int
    cancelled: int
    pending: int
    threshold: float
    threshold_from_model: bool = Field(description=(
        "true: each worker flagged by its own model's default, which is `threshold` only "
        "where that model is `model_version` (every image row names its model)"))
    model_version: str
    created_at: UtcTime
    images_per_second: float | None
    stalled: bool
    failure: str | None
    folder: str

    @classmethod
    def of(cls, summary: JobSummary) -> JobOut:
        job = summary.job
        return cls(
            id=job.id, state=summary.state, total_images=summary.total, done=summary.done,
            errors=summary.errors, below_threshold=summary.below_threshold,
            cancelled=summary.cancelled, pending=summary.pending, threshold=job.threshold,
            threshold_from_model=job.threshold_from_model, model_version=job.model_version,
            created_at=job.created_at,
            images_per_second=round(summary.rate, 2) if summary.rate else None,
            stalled=summary.stalled, failure=job.failure, folder=job.root)


class JobPage(BaseModel):
    items: list[JobOut]
    next_cursor: str | None = Field(description="the next page's cursor; null: the last")


class HandBrief(BaseModel):
    """One hand of a photo as its row stores it, in the photo's own pixels."""

    position: int = Field(description="its place in reading order, from 0")
    box: list[int] = Field(description="x0, y0, x1, y1")
    digit: int | None
    confidence: float | None
    below_threshold: bool | None


class ImageOut(BaseModel):
    """One image's row, with its current review's digit and the digit that counts."""

    id: int
    path: str
    status: ImageStatus
    digit: int | None
    confidence: float | None
    below_threshold: bool | None
    error: str | None
    probabilities: list[float] | None = Field(description="index = digit")
    reviewed_digit: int | None
    final_digit: int | None
    reviewed: bool = Field(False, description="a person has answered for it (see the review's "
                                              "history for what)")
    reading: str | None = Field(description=(
        'how it was read: "hand landmarks, whole photo" (the hand filled it), "hand '
        'landmarks" (found by the palm detector), "hand landmarks, on a padded copy", '
        '"hand landmarks, N hands" or "no hand found" (digit null); null until read'))
    digits: str | None = Field(None, description=(
        'every hand\'s digit, left to right ("407"; "7" for one hand; "" for none); '
        "digit is null for several hands"))
    hand_count: int | None = Field(None, description="hands read; null until read")
    final_digits: str | None = Field(None, description=(
        "the digits with the current review applied, left to right; null until read"))
    hands: list[HandBrief] = Field(default_factory=list, description=(
        "each hand read, left to right: its place, box, digit, confidence and flag"))

    @classmethod
    def of(cls, image: Image, review=None) -> ImageOut:
        return cls(
            id=image.id, path=image.path, status=image.status, digit=image.digit,
            confidence=image.confidence, below_threshold=image.below_threshold,
            error=image.error, probabilities=image.probabilities,
            reviewed_digit=reviewed_digit(review), final_digit=final_digit(image, review),
            reviewed=review is not None,
            reading=image.reading, digits=image.digits, hand_count=image.hand_count,
            final_digits=final_digits(image, review),
            hands=[HandBrief(**hand) for hand in hands_list(image.hand)])


class ImagePage(BaseModel):
    items: list[ImageOut]
    next_cursor: str | None = Field(description="the next page's cursor; null: the last")


class JobStats(BaseModel):
    digits: list[int] = Field(description="images per digit, 0 to 9, the reviews applied")
    no_hand: int = Field(description="images classified with no digit: no hand found")
    unusable: int = Field(0, description="images a person marked unusable")
    confidence_histogram: list[int] = Field(description="20 bins from 0 to 1")
    threshold: float


class ReviewOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    image_id: int
    digit: int | None
    unusable: bool
    reviewer: str
    reviewed_at: UtcTime
    hand_digits: list[int | None] | None = Field(None, description=(
        "a review of one hand: the photo's answer after it, per hand left to right "
        "(null: not a hand)"))


class ReviewStored(ReviewOut):
    reviewed: int = Field(description="the job's reviewed images, this one included")
    total: int = Field(description="the job's images to review")


class ReviewHistory(BaseModel):
    items: list[ReviewOut]


class ReviewQueue(BaseModel):
    job: str
    threshold: float
    reviewed: int
    total: int
    items: list[ImageOut]


class HandOut(BaseModel):
    """One hand the reader found, in the photo's own (upright) pixels."""

    box: list[float] = Field(description="x0, y0, x1, y1 around its landmarks")
    landmarks: list[list[float]] = Field(description=(
        "21 [x, y]: the wrist, then four joints per finger from the thumb"))
    digit: int | None = Field(None, description="the digit this hand signs")
    confidence: float | None = None
    below_threshold: bool | None = None


class PredictOut(BaseModel):
    """A worker's answer for one photo: the digit, how the photo was read, where the hands
    are and the square the landmark model read."""

    digit: int | None = Field(description="null when no hand, or several, were found")
    digits: str = Field("", description='every hand\'s digit, left to right ("407")')
    hand_count: int = Field(0, description="hands read")
    confidence: float = Field(description="the least sure hand's")
    below_threshold: bool = Field(description="true when any hand is below the threshold")
    threshold: float
    probabilities: list[float] | None = Field(description="index = digit; null: no hand")
    model_version: str
    reading: str = Field(description=(
        '"hand landmarks, whole photo", "hand landmarks", "hand landmarks, on a padded copy" '
        'or "no hand found"'))
    hands: list[HandOut] = Field(description="every hand read, left to right")
    crop_png: str | None = Field(description=(
        "the 224 x 224 square around the first hand that the landmark model read, PNG "
        "in base64; null when no hand was found"))
    photo_size: list[int] = Field(description=(
        "the photo's upright [width, height]: the pixels `hands` are given in"))
    job_id: str | None = Field(None, description="only with store=true")
    image_id: int | None = Field(None, description="only with store=true")

    @classmethod
    def of(cls, answer: dict[str, Any], *, photo_size: tuple[int, int]) -> PredictOut:
        fields = {name: answer[name] for name in cls.model_fields if name in answer}
        return cls(**{"hands": [], "crop_png": None, **fields,
                      "photo_size": list(photo_size)})
