"""The results schema: one ``jobs`` row per submitted folder, one ``images`` row per file.

The ``images`` rows are written by the producer before anything is enqueued (the job's
manifest), so the database, not the broker, knows which images are still pending. That is
what lets ``resume`` re-enqueue exactly the lost work after a broker restart.
"""

from __future__ import annotations

import posixpath
from datetime import UTC, datetime
from enum import StrEnum
from typing import cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; every timestamp we write is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class JobState(StrEnum):
    SUBMITTING = "submitting"  # the producer is still walking and enqueueing
    SUBMISSION_INTERRUPTED = "submission interrupted"  # its producer died: `resume` finishes
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    DONE_WITH_ERRORS = "done with errors"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        """The job ended: nothing more will happen to it (what waiters and streams stop on)."""
        return self in _FINISHED


_FINISHED = {JobState.DONE, JobState.DONE_WITH_ERRORS, JobState.FAILED, JobState.CANCELLED}


class ImageStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    ERROR = "error"
    CANCELLED = "cancelled"


class Base(DeclarativeBase):
    pass


def _folder_name(context) -> str:
    """A job recorded without a name is named as 0016 named the earlier ones: after the
    last component of its folder."""
    root = str(context.get_current_parameters().get("root") or "")
    return (posixpath.basename(root.rstrip("/")) or root)[:200]


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    # What people call it: the folder's or the upload's name unless given (see 0016).
    name: Mapped[str] = mapped_column(Text, default=_folder_name, server_default="")
    root: Mapped[str] = mapped_column(Text)
    threshold: Mapped[float] = mapped_column(Float)
    # No one gave the threshold: it is the default of the model that classifies each image.
    threshold_from_model: Mapped[bool] = mapped_column(Boolean, default=False)
    batch_size: Mapped[int] = mapped_column(Integer)
    total_images: Mapped[int] = mapped_column(Integer)
    total_batches: Mapped[int] = mapped_column(Integer)
    model_version: Mapped[str] = mapped_column(String(64))
    inline: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failure: Mapped[str | None] = mapped_column(Text)
    # The submission's own record: set when the walk is over and every batch enqueued;
    # until then, which producer is walking ("host:pid") and when it last wrote, so that
    # `status` can tell a producer at work from one that died, and `resume` can finish it.
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    producer: Mapped[str | None] = mapped_column(String(255))
    producer_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    submission_stopped: Mapped[str | None] = mapped_column(Text)  # why, when it raised
    # The signed call made once when the job ends (migration 0015, db/webhooks.py):
    # state pending -> sending (claimed once) -> delivered or failed; NULL: no webhook.
    webhook_url: Mapped[str | None] = mapped_column(Text)
    webhook_state: Mapped[str | None] = mapped_column(String(16))
    webhook_attempts: Mapped[int | None] = mapped_column(Integer)
    webhook_last_status: Mapped[str | None] = mapped_column(Text)
    webhook_claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    webhook_next_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    webhook_delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# The batch of the rows the walk itself gave an error (a file it could not stat or read):
# no message is sent for it, and no worker processes it.
UNREACHABLE_BATCH = -1


class Image(Base):
    __tablename__ = "images"
    __table_args__ = (
        UniqueConstraint("job_id", "path", name="uq_images_job_path"),
        Index("ix_images_job_status_batch", "job_id", "status", "batch"),
        # The web's lowest-confidence-first pages (keyset on confidence, id): see 0004.
        Index("ix_images_job_confidence_id", "job_id", "confidence", "id"),
        # The same pages filtered by digit or by the threshold, and pages in id order: see
        # 0010 (each had read the job's rows until a page of matches was found).
        Index("ix_images_job_id", "job_id", "id"),
        Index("ix_images_job_digit_confidence_id", "job_id", "digit", "confidence", "id"),
        Index("ix_images_job_digit_id", "job_id", "digit", "id"),
        Index("ix_images_job_below_confidence_id", "job_id", "below_threshold", "confidence",
              "id"),
        Index("ix_images_job_below_id", "job_id", "below_threshold", "id"),
    )

    # BIGINT on PostgreSQL (a million images a job adds up); SQLite needs INTEGER for rowid.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    batch: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(Text)  # relative to the job's root, readable
    # The name's exact bytes, only when it is not valid UTF-8 (``path`` then shows each
    # such byte as \xNN): what a worker opens.
    raw_path: Mapped[bytes | None] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16), default=ImageStatus.PENDING)
    digit: Mapped[int | None] = mapped_column(SmallInteger)
    class_index: Mapped[int | None] = mapped_column(SmallInteger)
    confidence: Mapped[float | None] = mapped_column(Float)
    below_threshold: Mapped[bool | None] = mapped_column(Boolean)
    probabilities: Mapped[list[float] | None] = mapped_column(JSON)  # index = digit
    error: Mapped[str | None] = mapped_column(Text)
    model_version: Mapped[str | None] = mapped_column(String(64))
    worker: Mapped[str | None] = mapped_column(String(255))
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # of its batch, when stored
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The hands found, as {"hands": [serving.preview.hand_record, ...]}, the answer's hand
    # first, in the photo's own pixels; NULL when none was found or the row is no result
    # (SQL NULL on SQLite too, not JSON's null: `WHERE hand IS NULL` finds them).
    hand: Mapped[dict | None] = mapped_column(JSON(none_as_null=True))
    # How the photo was read (serving.reader.Reading.how): "hand landmarks, whole photo"
    # (", placed once" when the first placement settled it), "hand landmarks", "hand
    # landmarks, on a padded copy", "hand landmarks, N hands" or "no hand found", then
    # ", N more pointing down, not read" or ", pointing down" (hands not signing); NULL on
    # error and pending rows.
    reading: Mapped[str | None] = mapped_column(Text)
    # The digits of every hand read, in reading order ("407"; "7" for one hand; "" for
    # none): ``digit`` holds a digit only for a photo with exactly one hand.
    digits: Mapped[str | None] = mapped_column(Text)
    hand_count: Mapped[int | None] = mapped_column(SmallInteger)
    # An object's ETag as the producer listed it (s3:// jobs only, see 0014): a worker
    # reads only that object, so one replaced after submit is refused, not classified.
    etag: Mapped[str | None] = mapped_column(Text)


class HandRow(Base):
    """One hand read on a photo: its place in reading order, its box in the photo's own
    pixels (after EXIF rotation), and its answer (see migration 0011)."""

    __tablename__ = "hands"
    __table_args__ = (UniqueConstraint("image_id", "position", name="uq_hands_image_position"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    image_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("images.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(SmallInteger)  # 0 = first in reading order
    x0: Mapped[int] = mapped_column(Integer)
    y0: Mapped[int] = mapped_column(Integer)
    x1: Mapped[int] = mapped_column(Integer)
    y1: Mapped[int] = mapped_column(Integer)
    digit: Mapped[int] = mapped_column(SmallInteger)
    confidence: Mapped[float] = mapped_column(Float)
    below_threshold: Mapped[bool] = mapped_column(Boolean)
    probabilities: Mapped[list[float] | None] = mapped_column(JSON)


class Review(Base):
    """A person's answer for one image: a digit, or ``unusable`` (the photo shows none).

    Never updated: a later review of the same image is a new row, and the image's current
    answer is its row with the highest ``id``, so the history stays. The model's own
    columns on ``images`` are never changed by a review.
    """

    __tablename__ = "reviews"
    __table_args__ = (Index("ix_reviews_image_id", "image_id", "id"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    image_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("images.id", ondelete="CASCADE"))
    # None when unusable, or when the hands reviewed leave several digits (hand_digits).
    digit: Mapped[int | None] = mapped_column(SmallInteger)
    unusable: Mapped[bool] = mapped_column(Boolean, default=False)
    reviewer: Mapped[str] = mapped_column(String(255))
    reviewed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # A review of one hand of several: the photo's answer after it, a digit (or None: not
    # a hand) per hand in reading order; None on a review of the photo as a whole.
    hand_digits: Mapped[list[int | None] | None] = mapped_column(JSON(none_as_null=True))


class Batch(Base):
    """One row per batch of a job: how many times a worker has started on it.

    Counted here, on one row per claim, rather than on each of the batch's image rows:
    those writes were most of PostgreSQL's work per task. Removing the count means a batch
    that kills its worker every time is redelivered for ever.
    """

    __tablename__ = "batches"

    job_id: Mapped[str] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    batch: Mapped[int] = mapped_column(Integer, primary_key=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # When its message was sent: `resume` re-sends only batches never sent (or, when the
    # broker holds none of the job's messages, the lost ones), so the queue never doubles.
    enqueued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When the workers' reconciler last sent it again, its message lost (0009): at most
    # once per SIGNDIGITS_STALL_SECONDS, so a batch lost again and again never floods.
    resent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The batch's image rows by outcome, recounted by every transaction that changes their
    # status (manifest, store, cancel: db.batches.refresh_batch_counts). A job's summary
    # adds these up, one row per batch; reading every image row instead took 160 ms per
    # summary at a million rows on PostgreSQL, and `run` and the job page ask twice a second.
    images: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    cancelled: Mapped[int] = mapped_column(Integer, default=0)
    below_threshold: Mapped[int] = mapped_column(Integer, default=0)
    last_finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ModelRow(Base):
    """A registered model artifact (see migration 0013 and db/registry.py): the workers
    serve the one promoted last, or the configured/shipped model when none is."""

    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("name", name="uq_models_name"),
                      Index("ix_models_promoted_at", "promoted_at"))

    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    parent: Mapped[str | None] = mapped_column(String(64))  # the version it was adapted from
    file: Mapped[str] = mapped_column(Text)  # the .keras, relative to SIGNDIGITS_MODELS_DIR
    figures: Mapped[dict | None] = mapped_column(JSON)  # evaluation, lineage, comparison
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    promoted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DeletedTotal(Base):
    """What deleted jobs took with them, one row per name (migration 0017, db/deleted.py):
    ``jobs``, and their ``images``, ``done``, ``below_threshold``, ``errors``,
    ``cancelled`` rows and ``webhook_attempts``. Only ever added to, in the transaction
    that deletes the job: ``GET /metrics`` adds them back, so its counters never fall."""

    __tablename__ = "deleted_totals"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    total: Mapped[int] = mapped_column(BigInteger, default=0)


# The tables as Core objects, for statements that bypass the ORM (bulk inserts, COPY,
# executemany updates): ``Model.__table__`` is typed as any FROM clause.
IMAGES = cast(Table, Image.__table__)
HANDS = cast(Table, HandRow.__table__)
BATCHES = cast(Table, Batch.__table__)
JOBS = cast(Table, Job.__table__)
DELETED_TOTALS = cast(Table, DeletedTotal.__table__)
