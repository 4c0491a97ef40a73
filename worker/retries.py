"""The one rule for a batch that did not finish: retry it, wait out an outage, or give up.

:func:`decide` is the only place that compares a batch's tries with
``SIGNDIGITS_MAX_ATTEMPTS``; the task (:mod:`worker.tasks`) and the claim
(:mod:`worker.batch`) both ask it, so a batch that raises and a batch whose worker dies
get the same number of tries. Nothing here touches the database or the broker.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from signdigits.config.settings import Settings

# A database outage is waited out in place, the message unacknowledged, for this long;
# after that the failure counts against the batch's tries like any other error.
OUTAGE_WAIT_SECONDS = 300.0
OUTAGE_MAX_DELAY = 10.0
# The database could not even say how many tries the batch has had: look again later.
UNCOUNTED_RETRY_SECONDS = 30
# A worker whose database does not know a job puts the batch back after this pause (so
# it does not take the same message again at once), for this long after the job was
# first found unknown; then the message is dropped with an error. The rows stay pending
# in the producer's database, where `signdigits resume` finds them.
UNKNOWN_JOB_DELAY = 5.0
UNKNOWN_JOB_PATIENCE = 3600.0


class Failure(StrEnum):
    UNFINISHED = "unfinished"  # a new delivery: every earlier try ended without a result
    ERROR = "error"  # this try raised
    OUTAGE = "outage"  # this try could not reach the database (or an s3:// job's storage)
    UNKNOWN_JOB = "unknown job"  # this worker's database has no such job


class Action(StrEnum):
    RETRY = "retry"  # try again after `delay` seconds (0: now, in this delivery)
    WAIT = "wait"  # sleep `delay` seconds in place, message unacknowledged, then try again
    GIVE_UP = "give up"  # no more tries: store `reason` on the batch's pending rows


@dataclass(frozen=True)
class Decision:
    action: Action
    delay: float = 0.0
    reason: str = ""


def decide(
    *, tries: int | None, failure: Failure, settings: Settings, waited: float = 0.0,
    detail: str = "",
) -> Decision:
    """What to do with a batch after ``tries`` tries of it ended without a result.

    ``tries`` counts the tries that have *ended*: at a new delivery (``UNFINISHED``), the
    attempts already counted on the batch; after a failure, the attempts including the
    one that just failed; ``None`` if the database could not be read. A batch gets
    exactly ``settings.max_attempts`` tries whether its tries raise or kill the worker
    process; after that its images get error rows saying why, and the job moves on.
    ``waited`` is how long this outage has been waited out (``OUTAGE``), or how long ago
    the job was first found unknown (``UNKNOWN_JOB``). ``detail`` ends the give-up reason.
    """
    if failure is Failure.OUTAGE and waited < OUTAGE_WAIT_SECONDS:
        # As long again as waited so far: doubling from 0.5 s, at most 10 s.
        return Decision(Action.WAIT, delay=min(max(waited, 0.5), OUTAGE_MAX_DELAY))
    if failure is Failure.UNKNOWN_JOB:
        if waited < UNKNOWN_JOB_PATIENCE:
            return Decision(Action.RETRY, delay=UNKNOWN_JOB_DELAY)
        return Decision(Action.GIVE_UP, reason=f"no worker that knows the job took it in "
                        f"{waited:.0f} s: {detail}")
    if tries is None:
        return Decision(Action.RETRY, delay=UNCOUNTED_RETRY_SECONDS)
    if tries >= settings.max_attempts:
        return Decision(Action.GIVE_UP, reason=f"gave up after {tries} attempts: {detail}")
    if failure is Failure.UNFINISHED:
        return Decision(Action.RETRY, delay=0.0)
    # Below the visibility timeout, or Redis would hand the waiting retry to another worker.
    return Decision(Action.RETRY,
                    delay=min(2**tries, 60, max(1, settings.visibility_timeout // 2)))
