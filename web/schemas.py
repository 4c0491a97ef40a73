"""What the HTTP API takes and gives, as Pydantic models: its checks and its ``/docs``.

Responses are built from the database's rows and summaries (``JobOut.of(summary)``,
``ImageOut.of(image, review)``, ``ReviewOut.model_validate(review)``); the routes declare
them as ``response_model``. Requests are validated by the models here, each error one
line saying what is wrong (the application's validation handler joins field and message).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import UploadFile
from pydantic import (
    BaseModel,
    Field,
    model_validator,
)

from signdigits.config.webhooks import shown_url
from signdigits.db.export import final_digit, final_digits, hands_list, reviewed_digit
from signdigits.db.models import Image, ImageStatus, Job, JobState
from signdigits.db.progress import JobSummary
from signdigits.db.webhooks import describe_webhook
from signdigits.web.fields import BatchSize, Folder, Threshold, UtcTime, Webhook, an_object
from signdigits.web.job_names import JobName
from signdigits.worker.thresholds import ModelRead


class SubmitFolder(BaseModel):
    """`application/json`: a folder on the server (within `SIGNDIGITS_ALLOWED_ROOTS`)."""

    folder: Folder = Field(description="absolute path of a folder on the server, or "
                                       "s3://bucket/prefix (read by the workers)")
    name: JobName = Field(None, description="the job's name; unset: the folder's")
    threshold: Threshold = Field(None, description="unset: the model's default")
    batch_size: BatchSize = Field(None, description="images per batch; unset: the setting's")
    webhook: Webhook = Field(None, description="http(s) URL POSTed the job's signed summary "
                             "when it ends; unset: SIGNDIGITS_WEBHOOK_URL")

    @model_validator(mode="before")
    @classmethod
    def an_object(cls, data: Any) -> Any:
        # A missing folder is checked as a folder: "must be an absolute path on the server"
        # tells the client what to send, where "Field required" only that something lacks.
        return {"folder": None, **an_object(data, 'send a JSON object: {"folder": "/abs/path"}')}


class SubmitUpload(BaseModel):
    """`multipart/form-data`: images and .zip archives of them; their paths are kept."""

    files: list[UploadFile] = Field(description="images or .zip archives (repeat the field)")
    name: JobName = Field(None, description=(
        "the job's name; unset: the file's name (a zip's without .zip), or the first's "
        "and how many more"))
    threshold: Threshold = Field(None, description="unset: the model's default")
    webhook: Webhook = Field(None, description="as for a folder")


class WebhookSend(BaseModel):
    """`{}` or `{"url": "https://..."}`: the job's webhook sent again, to `url` from now on
    when given (checked as at submit)."""

    url: Webhook = Field(None, description="where it goes from now on; unset: where it went")

    @model_validator(mode="before")
    @classmethod
    def an_object(cls, data: Any) -> Any:
        return an_object(data, 'send a JSON object: {} or {"url": "https://..."}')


class WebhookOut(BaseModel):
    """What became of the job's webhook (docs/webhooks.md)."""

    url: str = Field(description="without credentials or query")
    state: str = Field(description="pending (the job runs), sending, delivered or failed")
    attempts: int
    last_status: str | None = Field(description="the last attempt's HTTP status, or why it "
                                    "failed")
    delivered_at: UtcTime | None
    line: str = Field(description="all of it in one line, as `signdigits status` says it")

    @classmethod
    def of(cls, job: Job) -> WebhookOut | None:
        line = describe_webhook(job)
        if line is None:
            return None
        return cls(url=shown_url(job.webhook_url or ""), state=job.webhook_state or "",
                   attempts=job.webhook_attempts or 0, last_status=job.webhook_last_status,
                   delivered_at=job.webhook_delivered_at, line=line)


class ModelReadOut(BaseModel):
    """A model that classified some of the job's images, and the threshold it flagged by."""

    version: str
    images: int = Field(description="the job's images it classified")
    threshold: float | None = Field(description=(
        "the threshold its images were flagged against: the job's, or (`threshold_from_model`"
        ") this model's default; null when that default cannot be read any more"))


class JobOut(BaseModel):
    """A job with its counts: what the API, the events and the pages all show."""

    id: str
    name: str
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
    webhook: WebhookOut | None = None
    reviewed: int | None = Field(None, description=(
        "below-threshold images a person has reviewed (of `below_threshold`): counted by "
        "the jobs list (`GET /api/jobs`), null elsewhere (one job's: its `/review`)"))
    models: list[ModelReadOut] | None = Field(None, description=(
        "every model that classified the job's images, most images first, with the "
        "threshold each applied: more than one when a model was promoted while the job ran "
        "(`model_version` and `threshold` are the submit's). Given by one job's answers "
        "(`GET /api/jobs/{id}`, submit, rename, cancel) and its `done` event; null in "
        "lists and the other events, which do not count its rows"))

    @classmethod
    def of(cls, summary: JobSummary, *, reviewed: int | None = None,
           models: list[ModelRead] | None = None) -> JobOut:
        job = summary.job
        return cls(
            id=job.id, name=job.name, state=summary.state, reviewed=reviewed,
            models=None if models is None else [
                ModelReadOut(version=m.version, images=m.images, threshold=m.threshold)
                for m in models],
            total_images=summary.total, done=summary.done,
            errors=summary.errors, below_threshold=summary.below_threshold,
            cancelled=summary.cancelled, pending=summary.pending, threshold=job.threshold,
            threshold_from_model=job.threshold_from_model, model_version=job.model_version,
            created_at=job.created_at,
            images_per_second=round(summary.rate, 2) if summary.rate else None,
            stalled=summary.stalled, failure=job.failure, folder=job.root,
            webhook=WebhookOut.of(job))


class JobSubmitted(JobOut):
    """A job just submitted, and what of its upload it did without."""

    left_out: list[str] = Field(default_factory=list, description=(
        "one line for each part of the upload it did without, and why: skipped (not an "
        "image, not a readable zip) or an error row of the job (over the per-file cap, "
        "an entry that cannot be unpacked); the first 100. Empty for a folder's job, whose "
        "walk skips what is not an image as it goes"))
    left_out_count: int = Field(0, description="all of them, listed or not")


class JobDeleted(BaseModel):
    id: str
    name: str
    files_removed: bool = Field(description="the job's uploaded files were removed too")


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
        'landmarks, whole photo, placed once" (and the classifier was at least 0.999 sure '
        'of its first placement), "hand landmarks" (found by the palm detector), "hand '
        'landmarks, on a padded copy", "hand landmarks, N hands" or "no hand found" (digit '
        'null), then ", N more pointing down, not read" (hands resting, not signing, left '
        'out) or ", pointing down" (every hand found does: below the threshold), then '
        '", unlike the training hands" (a hand read lies beyond every hand the model trained '
        'on: below any threshold); null until read'))
    digits: str | None = Field(None, description=(
        'every hand\'s digit, left to right ("407"; "7" for one hand; "" for none); '
        "digit is null for several hands"))
    hand_count: int | None = Field(None, description="hands read; null until read")
    final_digits: str | None = Field(None, description=(
        "the digits with the current review applied, left to right; null until read"))
    hands: list[HandBrief] = Field(default_factory=list, description=(
        "each hand read, left to right: its place, box, digit, confidence and flag"))
    model_version: str | None = Field(None, description=(
        "the model that read it (the job's models: GET /api/jobs/{id}); null until read"))

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
            hands=[HandBrief(**hand) for hand in hands_list(image.hand)],
            model_version=image.model_version)


class ImagePage(BaseModel):
    items: list[ImageOut]
    next_cursor: str | None = Field(description="the next page's cursor; null: the last")


class JobStats(BaseModel):
    digits: list[int] = Field(description="images per digit, 0 to 9, the reviews applied")
    no_hand: int = Field(description="images classified with no digit: no hand found")
    unusable: int = Field(0, description="images a person marked unusable")
    confidence_histogram: list[int] = Field(description="20 bins from 0 to 1")
    threshold: float


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
    below_threshold: bool = Field(description=(
        "true when any hand is below the threshold, no hand was found, the photo holds more "
        "hands than were read, or every hand found points down"))
    threshold: float
    probabilities: list[float] | None = Field(description="index = digit; null: no hand")
    model_version: str
    reading: str = Field(description=(
        '"hand landmarks, whole photo", "hand landmarks, whole photo, placed once", '
        '"hand landmarks", "hand landmarks, on a padded copy", "hand landmarks, N hands" '
        'or "no hand found", then ", N more pointing down, not read" or ", pointing down", '
        'then ", unlike the training hands" (see ImageOut)'))
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


class ModelOut(BaseModel):
    """A registered model (``GET /api/models``): its lineage, figures and last comparison."""

    version: str
    name: str
    parent: str | None
    created_at: datetime
    promoted_at: datetime | None
    serving: bool = Field(description="the workers read new batches with it")
    figures: dict[str, Any] = Field(description="evaluation, lineage (parent, jobs, reviews) "
                                    "and comparison, as `adapt` and `compare` stored them")


class ModelList(BaseModel):
    serving: str = Field(description="the version the workers serve (promoted, or default)")
    default: str | None = Field(description="SIGNDIGITS_MODEL_PATH's or the shipped model's "
                                "version: served when nothing is promoted")
    items: list[ModelOut]


class ModelChange(BaseModel):
    before: str
    after: str
    name: str = Field(description="the model served from the next batch ('default': the "
                      "configured or shipped one)")


class WorkersOut(BaseModel):
    online: int = Field(description="workers whose heartbeat on the broker is fresh")
    models: dict[str, int] = Field(description="model version -> the workers online serving "
                                   "it, as their heartbeats say")
