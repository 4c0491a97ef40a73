"""``worker.retries.decide``: the one rule for a batch that did not finish, as a table."""

from __future__ import annotations

import pytest

from signdigits.config.settings import Settings
from signdigits.worker.retries import Action, Failure, decide

RETRY, WAIT, GIVE_UP = Action.RETRY, Action.WAIT, Action.GIVE_UP
UNFINISHED, ERROR, OUTAGE, UNKNOWN = (Failure.UNFINISHED, Failure.ERROR, Failure.OUTAGE,
                                      Failure.UNKNOWN_JOB)

# (tries, failure, max_attempts, visibility_timeout, waited) -> (action, delay, reason)
TABLE = [
    # A new delivery: tries left run at once; none left, its rows get the reason.
    ((0, UNFINISHED, 5, 3600, 0), (RETRY, 0, "")),
    ((4, UNFINISHED, 5, 3600, 0), (RETRY, 0, "")),
    ((5, UNFINISHED, 5, 3600, 0), (GIVE_UP, 0, "gave up after 5 attempts: why")),
    ((7, UNFINISHED, 5, 3600, 0), (GIVE_UP, 0, "gave up after 7 attempts: why")),
    # A try raised: back off 2, 4, 8... s, at most 60 s ...
    ((1, ERROR, 5, 3600, 0), (RETRY, 2, "")),
    ((3, ERROR, 5, 3600, 0), (RETRY, 8, "")),
    ((5, ERROR, 9, 3600, 0), (RETRY, 32, "")),
    ((6, ERROR, 9, 3600, 0), (RETRY, 60, "")),
    # ... and under half the visibility timeout, or Redis hands the retry to another worker
    ((6, ERROR, 9, 30, 0), (RETRY, 15, "")),
    ((3, ERROR, 9, 5, 0), (RETRY, 2, "")),
    ((1, ERROR, 1, 3600, 0), (GIVE_UP, 0, "gave up after 1 attempts: why")),
    ((5, ERROR, 5, 3600, 0), (GIVE_UP, 0, "gave up after 5 attempts: why")),
    # The database could not say how many tries: look again in 30 s.
    ((None, ERROR, 5, 3600, 0), (RETRY, 30, "")),
    ((None, UNFINISHED, 5, 3600, 0), (RETRY, 30, "")),
    # An outage is waited out in place, as long again as so far (0.5 s to 10 s) ...
    ((None, OUTAGE, 5, 3600, 0), (WAIT, 0.5, "")),
    ((None, OUTAGE, 5, 3600, 0.3), (WAIT, 0.5, "")),
    ((None, OUTAGE, 5, 3600, 1), (WAIT, 1, "")),
    ((None, OUTAGE, 5, 3600, 7), (WAIT, 7, "")),
    ((None, OUTAGE, 5, 3600, 20), (WAIT, 10, "")),
    ((9, OUTAGE, 5, 3600, 299.9), (WAIT, 10, "")),  # tries do not matter while waiting
    # ... for 300 s; then it counts against the tries like any other failure.
    ((None, OUTAGE, 5, 3600, 300), (RETRY, 30, "")),
    ((2, OUTAGE, 5, 3600, 300), (RETRY, 4, "")),
    ((5, OUTAGE, 5, 3600, 300), (GIVE_UP, 0, "gave up after 5 attempts: why")),
    # A job this worker's database does not know: put back every 5 s, for an hour.
    ((None, UNKNOWN, 5, 3600, 0), (RETRY, 5, "")),
    ((99, UNKNOWN, 5, 3600, 3599), (RETRY, 5, "")),  # tries are not its measure
    ((0, UNKNOWN, 5, 3600, 3600),
     (GIVE_UP, 0, "no worker that knows the job took it in 3600 s: why")),
]


@pytest.mark.parametrize(("case", "expected"), TABLE, ids=[
    f"{c[1].value}-tries={c[0]}-max={c[2]}-vt={c[3]}-waited={c[4]}" for c, _ in TABLE])
def test_decide(case, expected):
    tries, failure, max_attempts, visibility_timeout, waited = case
    settings = Settings(max_attempts=max_attempts, visibility_timeout=visibility_timeout)
    decision = decide(tries=tries, failure=failure, settings=settings, waited=waited,
                      detail="why")
    assert (decision.action, decision.delay, decision.reason) == expected


@pytest.mark.parametrize("max_attempts", range(1, 9))
def test_a_batch_gets_max_attempts_tries_whether_they_raise_or_kill_the_process(max_attempts):
    settings = Settings(max_attempts=max_attempts)
    # Each try raises: after try n the rule sees n tries ended.
    raised = 1
    while decide(tries=raised, failure=ERROR, settings=settings).action is RETRY:
        raised += 1
    # Each try kills its process: delivery n (its attempt counted) sees n - 1 ended.
    delivered = 1
    while decide(tries=delivered - 1, failure=UNFINISHED, settings=settings).action is RETRY:
        delivered += 1
    tries_that_died = delivered - 1  # the last delivery gave up without running
    assert raised == tries_that_died == max_attempts
