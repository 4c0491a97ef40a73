"""What ``adapt`` and ``compare`` learn from: a photo reviewed hand by hand gives one
example per hand answered with a digit, each matched to the stored hand it answers; a
hand answered "not a hand", or not found again where it was, gives none and is counted.

Real workers read the photos (tests/photos.three_people: three hands reading "407");
training.adapt_jobs.reviewed_photos reads them again as ``adapt`` and ``compare`` do.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.conftest import Stack
from tests.photos import plain_wall, three_people


@pytest.fixture
def stack(redis_url, database_url, tmp_path):
    stack = Stack(redis_url, database_url, tmp_path)
    yield stack
    stack.stop()


def _moved_right(path: Path) -> None:
    """The photo written again with a strip of wall on its left as wide as a third of it:
    the same hands, somewhere else (a file replaced after its review)."""
    from PIL import Image

    with Image.open(path) as group:
        moved = Image.new("RGB", (group.width + group.width // 3, group.height), (205, 198, 186))
        moved.paste(group, (group.width // 3, 0))
    moved.save(path, quality=90)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_each_hand_answered_with_a_digit_is_one_example_of_the_hand_it_answers(
        stack, dataset, tmp_path):
    from signdigits.config.settings import Settings
    from signdigits.db.models import Image
    from signdigits.db.reviews import add_hand_review, add_review
    from signdigits.serving.classifier import Classifier
    from signdigits.training.adapt_jobs import reviewed_photos

    folder = tmp_path / "photos"
    folder.mkdir()
    assert three_people(dataset, folder / "group.jpg") == "407"
    for name in ("not-a-hand.jpg", "replaced.jpg", "whole.jpg"):
        shutil.copy(folder / "group.jpg", folder / name)
    plain_wall(folder / "wall.jpg")
    stack.start_worker(concurrency=1)
    job_id = stack.submit(folder)
    stack.wait_for(job_id)

    with stack.sessions().begin() as session:
        images = {i.path: i for i in session.scalars(select(Image).where(Image.job_id == job_id))}
        assert {p: i.digits for p, i in images.items()} == {
            "group.jpg": "407", "not-a-hand.jpg": "407", "replaced.jpg": "407",
            "whole.jpg": "407", "wall.jpg": ""}

        def hand(path: str, place: int, digit: int | None) -> None:
            add_hand_review(session, image=images[path], hand=place, digit=digit,
                            reviewer="test")

        hand("group.jpg", 1, 6)  # the middle hand corrected: [4, 6, 7]
        hand("not-a-hand.jpg", 1, None)  # [4, None, 7]
        hand("replaced.jpg", 2, 7)  # [4, 0, 7], then the file changes
        add_review(session, image=images["whole.jpg"], digit=4, unusable=False,
                   reviewer="test")  # one answer for three hands: nothing to match it to
        add_review(session, image=images["wall.jpg"], digit=3, unusable=False, reviewer="test")
    # Replaced with its old time kept (`cp -p`, `rsync -t`): only the boxes tell it apart.
    written = (folder / "replaced.jpg").stat()
    _moved_right(folder / "replaced.jpg")
    os.utime(folder / "replaced.jpg", ns=(written.st_atime_ns, written.st_mtime_ns))

    settings = Settings(database_url=stack.database_url)
    with stack.sessions()() as session:
        photos = reviewed_photos(settings, session, [job_id], allowed_roots=[])
        paths = {i.id: i.path for i in session.scalars(select(Image))}
    examples = [(paths[i], place, digit)
                for i, place, digit in zip(photos.image_ids, photos.places, photos.digits,
                                           strict=True)]
    assert examples == [("group.jpg", 0, 4), ("group.jpg", 1, 6), ("group.jpg", 2, 7),
                        ("not-a-hand.jpg", 0, 4), ("not-a-hand.jpg", 2, 7)]
    assert (len(photos), photos.photos) == (5, 2)
    assert photos.left_out == {"not a hand": 1, "hand not found again": 3,
                               "no hand": 1, "several hands": 1}
    # Each example's features are those of the hand its answer is for: the model that read
    # the job reads them 4 0 7 (the middle one is the hand the reviewer said is a 6).
    read = [p.digit for p in Classifier().classify(photos.x)]
    assert read == [4, 0, 7, 4, 7]

    # export-reviews writes digit folders: the photos answered hand by hand with several
    # digits fit none of them, and are counted instead (they had gone into a "None" folder).
    from signdigits.training.review_export import export_reviews

    out = tmp_path / "export"
    with stack.sessions()() as session:
        summary = export_reviews(session, job_ids=[job_id], out=out, max_bytes=1 << 24,
                                 allowed_roots=[], warn=lambda line: None)
    assert (summary.written, summary.several_digits) == (2, 3)
    assert sorted(p.parent.name for p in out.glob("*/*")) == ["3", "4"]
