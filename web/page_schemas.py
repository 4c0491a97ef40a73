"""What the job page's own endpoints take and give: the image filter shared by the grid,
its count and a bulk review; the bulk review; the answers checked against labels.

Beside :mod:`web.schemas` (the API's core models), which it uses.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field, Strict, model_validator
from pydantic_core import PydanticCustomError

from signdigits.db.images import ImageFilter
from signdigits.db.labels import Evaluation
from signdigits.db.models import ImageStatus
from signdigits.web.fields import Digit, Flag, an_object
from signdigits.web.limits import MAX_ID
from signdigits.web.review_schemas import QUEUE_REVIEWED, QUEUE_TOTAL

# One action writes one review row per image, in one transaction: past this, the
# transaction (and the lock SQLite holds for it) grows too long for one request.
MAX_BULK = 50_000


class ImageQuery(BaseModel):
    """Which of a job's images: the grid's filters (all given ones must hold)."""

    model_config = ConfigDict(extra="forbid")

    digit: Annotated[int | None, Field(ge=0, le=9)] = Field(
        None, description="the model's digit")
    below_threshold: bool | None = None
    status: ImageStatus | None = None
    reviewed: bool | None = Field(None, description="true: reviewed by a person; false: not")
    no_hand: bool = Field(False, description="only photos where no hand was found")
    label: Annotated[int | None, Field(ge=0, le=9)] = Field(
        None, description="only photos in the folder named this digit (a label)")
    wrong: bool = Field(False, description=(
        "only labelled one-hand photos whose model answer is not their folder's digit"))

    def where(self, batches: list[int] | None = None) -> ImageFilter:
        return ImageFilter(self.digit, self.below_threshold,
                           self.status.value if self.status else None, self.reviewed,
                           self.no_hand, self.label, self.wrong,
                           tuple(batches) if batches is not None else None)


def image_query(
    digit: Annotated[int | None, Query(ge=0, le=9, description="the model's digit")] = None,
    below_threshold: bool | None = None,
    status: ImageStatus | None = None,
    reviewed: Annotated[bool | None, Query(
        description="true: reviewed by a person; false: not")] = None,
    no_hand: Annotated[bool, Query(description="only photos where no hand was found")] = False,
    label: Annotated[int | None, Query(ge=0, le=9, description=(
        "only photos in the folder named this digit (a label)"))] = None,
    wrong: Annotated[bool, Query(description=(
        "only labelled one-hand photos whose model answer is not their label"))] = False,
) -> ImageQuery:
    return ImageQuery(digit=digit, below_threshold=below_threshold, status=status,
                      reviewed=reviewed, no_hand=no_hand, label=label, wrong=wrong)


class ImageCount(BaseModel):
    count: int


_BULK = ('send {"image_ids": [1, 2], "digit": 0-9} or {"filter": {...}, "unusable": true}: '
         "image ids or a filter, and one answer")


class BulkReviewIn(BaseModel):
    """One answer for many images of a job: the ones named, or all a filter matches."""

    image_ids: list[Annotated[int, Strict(), Field(ge=0, le=MAX_ID)]] | None = Field(
        None, max_length=MAX_BULK, description="these images (all of the job)")
    filter: ImageQuery | None = Field(None, description=(
        "every classified image the filter matches now (as the grid's query parameters)"))
    expected: Annotated[int | None, Strict(), Field(ge=0)] = Field(None, description=(
        "with filter: the count the person confirmed; another count is refused (409)"))
    digit: Digit = Field(None, description="the digit they show")
    unusable: Flag = Field(False, description="they show none")

    @model_validator(mode="before")
    @classmethod
    def an_object(cls, data: Any) -> Any:
        return an_object(data, _BULK)

    @model_validator(mode="after")
    def one_answer(self) -> BulkReviewIn:
        if (self.image_ids is None) == (self.filter is None):
            raise PydanticCustomError("bulk_review", "send image_ids or filter (one of them)")
        if self.unusable == (self.digit is not None):
            raise PydanticCustomError("bulk_review", "send a digit or unusable (one of them)")
        if self.image_ids is not None and not self.image_ids:
            raise PydanticCustomError("bulk_review", "image_ids is empty")
        return self


class BulkReviewOut(BaseModel):
    """What was just answered, then where the job's review queue stands (its old
    ``reviewed`` / ``total`` had read as the answer's own count)."""

    answered: int = Field(description="images given the answer now: one review row each")
    image_ids: list[int] = Field(description="those images, by id, in order")
    digit: int | None = Field(description="the digit given (None when marked unusable)")
    unusable: bool
    answered_below_threshold: int = Field(description=(
        "of the images answered, those below the threshold (the review queue's)"))
    queue_reviewed: int = Field(description=QUEUE_REVIEWED)
    queue_total: int = Field(description=QUEUE_TOTAL)


class EvaluationOut(BaseModel):
    """The job's answers against its labels (folders named 0-9)."""

    counted: int = Field(description="labelled photos with one hand or none")
    right: int
    accuracy: float | None
    several_hands: int = Field(description="labelled photos of several hands: not counted")
    errors: int = Field(description="labelled photos that could not be read: not counted")
    pending: int = Field(description="labelled photos not read yet: not counted")
    cancelled: int = Field(description="labelled photos a cancel left unread: not counted")
    unlabelled: int
    threshold: float
    kept: int = Field(description="counted photos at or above the job's threshold")
    kept_right: int
    final_counted: int = Field(description="counted photos not marked unusable")
    final_right: int = Field(description="right with the reviews applied")
    matrix: list[list[int]] = Field(description=(
        "[label][answer]: answers 0-9, then 10 = no hand found"))
    by_confidence: list[list[int]] = Field(description=(
        "1,000 bins of confidence (0.001 wide): [counted, right] in each"))

    @classmethod
    def of(cls, found: Evaluation) -> EvaluationOut:
        return cls(
            counted=found.counted, right=found.right,
            accuracy=found.right / found.counted if found.counted else None,
            several_hands=found.several_hands, errors=found.errors, pending=found.pending,
            cancelled=found.cancelled,
            unlabelled=found.unlabelled, threshold=found.threshold, kept=found.kept,
            kept_right=found.kept_right, final_counted=found.final_counted,
            final_right=found.final_right, matrix=found.matrix,
            by_confidence=found.by_confidence)
