"""What the review routes take and give: a person's answer (for the photo, or one hand
of several), the stored review, an image's history, the queue."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, Strict, model_validator
from pydantic_core import PydanticCustomError

from signdigits.web.fields import Digit, Flag, UtcTime, an_object, said
from signdigits.web.schemas import ImageOut

_REVIEW = ('send {"digit": 0-9} or {"unusable": true}; for one hand of several, '
           '{"hand": 0, "digit": 0-9} or {"hand": 0, "not_a_hand": true}')


class ReviewIn(BaseModel):
    """A person's answer: `{"digit": 7}`, or `{"unusable": true}`; for one hand of a photo
    of several, `{"hand": 1, "digit": 3}` or `{"hand": 1, "not_a_hand": true}`."""

    digit: Digit = Field(None, description="the digit the photo (or the hand) shows")
    unusable: Flag = Field(False, description="the photo shows none")
    hand: Annotated[int | None, Strict(), Field(ge=0, le=63),
                    said("integer", "must be a hand's place, 0 to 63")] = Field(
        None, description="the hand's place in reading order, from 0 (left)")
    not_a_hand: Flag = Field(False, description="with hand: what was found is no hand")

    @model_validator(mode="before")
    @classmethod
    def an_object(cls, data: Any) -> Any:
        return an_object(data, _REVIEW)

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


# Where the job's review queue stands after an answer: the same in the single-image and
# the bulk answer (web.page_schemas.BulkReviewOut).
QUEUE_REVIEWED = "the job's below-threshold images with a review, after this answer"
QUEUE_TOTAL = "the job's below-threshold images"


class ReviewStored(ReviewOut):
    """The stored review, then where the job's review queue stands (``reviewed`` /
    ``total`` read as this answer's own count: kept for old clients, deprecated)."""

    queue_reviewed: int = Field(description=QUEUE_REVIEWED)
    queue_total: int = Field(description=QUEUE_TOTAL)
    reviewed: int = Field(deprecated="deprecated: same as queue_reviewed",
                          description="deprecated: same as queue_reviewed")
    total: int = Field(deprecated="deprecated: same as queue_total",
                       description="deprecated: same as queue_total")


class ReviewHistory(BaseModel):
    items: list[ReviewOut]


class ReviewQueue(BaseModel):
    job: str
    threshold: float
    reviewed: int
    total: int
    items: list[ImageOut]


