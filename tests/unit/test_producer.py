"""The producer's pure rules: how a job is cut into batches, and its one-line errors."""

from __future__ import annotations

import pytest

from signdigits.producer.walk import batch_sizes, one_line


def test_a_jobs_last_batches_shrink_so_workers_finish_together():
    assert batch_sizes(5000, 128, last=False) == [128] * 39 + [8]  # not the end: as cut
    tail = batch_sizes(4496, 128, last=True)
    assert sum(tail) == 4496 and tail[:34] == [128] * 34
    assert tail[34:] == [72, 36, 18, 18]  # the last full batch and the 16 left, halving
    assert batch_sizes(16, 128, last=True) == [16]
    assert batch_sizes(100, 128, last=True) == [50, 25, 25]  # every worker gets some
    assert batch_sizes(251, 32, last=True) == [32] * 7 + [27]  # small batches: as cut
    for count in range(1, 1000):
        sizes = batch_sizes(count, 128, last=True)
        assert sum(sizes) == count and all(0 < s <= 128 for s in sizes)
        assert sizes[-1] <= 32  # the last to finish holds little


@pytest.mark.parametrize(("count", "batch_size", "last", "sizes"), [
    (1, 128, True, [1]),
    (128, 128, False, [128]),
    (128, 128, True, [64, 32, 32]),
    (129, 128, True, [64, 32, 16, 17]),
    (256, 128, True, [128, 64, 32, 32]),
    (60, 6, True, [6] * 10),  # at most 2 x 16: cut as it is
    (33, 32, True, [32, 1]),
    (64, 64, True, [32, 32]),
    (65, 64, True, [32, 16, 17]),
    (1000, 4096, False, [1000]),  # mid-walk: no halving, the rest waits for more names
])
def test_batch_sizes(count, batch_size, last, sizes):
    assert batch_sizes(count, batch_size, last=last) == sizes


def test_a_walk_stopped_by_the_database_says_why_in_one_line():
    """SQLAlchemy's statement and 'Background on this error' link had gone into the job's
    submission_stopped, and wrapped over four lines of `status`'s table."""
    from sqlalchemy.exc import OperationalError

    error = OperationalError("INSERT INTO images ...", {}, ConnectionError(
        "the connection is lost\nserver closed the connection unexpectedly"))
    assert "\n" in str(error) and "sqlalche.me" in str(error)
    assert one_line(error) == "ConnectionError: the connection is lost"
    assert one_line(ValueError()) == "ValueError"
