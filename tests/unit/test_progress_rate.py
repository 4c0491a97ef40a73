"""A job's rate (db.progress.JobSummary.rate): images read per second, never the rows a
cancel marked at once, nor the time no batch finished for longer than the stall time."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from signdigits.db.models import Job, JobState
from signdigits.db.progress import JobSummary, idle_seconds

START = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def _summary(*, done: int, errors: int, cancelled: int, last_s: float,
             worked_s: float | None = None) -> JobSummary:
    job = Job(id="a" * 32, created_at=START)
    total = done + errors + cancelled
    return JobSummary(job, JobState.CANCELLED if cancelled else JobState.DONE, total, 0, done,
                      errors, cancelled, 0, START + timedelta(seconds=last_s), False,
                      None if worked_s is None else START + timedelta(seconds=worked_s))


def test_a_finished_job_reads_its_rows_over_its_time():
    assert _summary(done=90, errors=10, cancelled=0, last_s=50).rate == 2.0


def test_a_cancelled_job_counts_only_what_was_read_until_the_last_row_read():
    # 1,423 rows cancelled at 100 s gave "1,453 images a second" over what 30 took 10 s.
    summary = _summary(done=28, errors=2, cancelled=1423, last_s=100, worked_s=10)
    assert summary.rate == 3.0


def test_a_job_cancelled_before_any_row_was_read_has_no_rate():
    assert _summary(done=0, errors=0, cancelled=50, last_s=5).rate is None


def _at(*seconds: float) -> list[datetime]:
    return [START + timedelta(seconds=s) for s in seconds]


def test_an_outage_between_batches_is_not_working_time():
    # Batches every 2 s, then an hour with no worker, then `resume`: the batch read after
    # it took 2 s as well, so 3,598 s are idle.
    finishes = _at(2, 4, 6, 3606, 3608)
    assert idle_seconds(START, finishes, until=finishes[-1], stall_seconds=120) == 3598
    summary = dataclasses.replace(_summary(done=50, errors=0, cancelled=0, last_s=3608),
                                  idle_seconds=3598)
    assert summary.rate == 5.0


def test_gaps_up_to_the_stall_time_are_work_and_finishes_after_until_are_not_counted():
    finishes = _at(100, 200, 5000)  # the last: rows a cancel marked, after the last read
    assert idle_seconds(START, finishes, until=finishes[1], stall_seconds=120) == 0
    assert idle_seconds(START, _at(121), until=START + timedelta(seconds=121),
                        stall_seconds=120) == 121
