"""indexes for a job's image pages filtered by digit or by the threshold, in either order

The grid and the API filter a job's rows by ``digit`` or ``below_threshold`` and page them
lowest confidence first (keyset on ``(confidence, id)``) or by ``id`` (the API's default).
Only ``(job_id, confidence, id)`` existed: a filtered page read the job's rows in that
order, or all of them and sorted, until it had found a page of matches. On 200,000 rows,
``digit=7`` in id order took 324 ms on SQLite and ``below_threshold=true`` 148 ms 90% of
the way through on PostgreSQL (``python -m signdigits.bench.image_pages``). With an index
per filter and order, every page reads only its own rows. ``(job_id, id)`` does the same
for the unfiltered pages in id order, which PostgreSQL otherwise sorted (82 ms). Every
page is then 3-13 ms on either database; a worker's store pays about 12 µs an image for
the five indexes on PostgreSQL (``signdigits.bench.store``), beside 33 CPU-ms to read it.

A reviewed / not reviewed filter gets no index here: reviews live in their own table
(one row per answer, no column on ``images`` to index). "Not reviewed" pages would read
the job's rows in order as these do, probing ``ix_reviews_image_id`` per row, fast while
most rows are unreviewed; "reviewed only" on a large job needs the job on ``reviews`` or
a reviewed mark on ``images``, indexed with ``job_id`` by that filter's own migration.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_images_job_id": ["job_id", "id"],
    "ix_images_job_digit_confidence_id": ["job_id", "digit", "confidence", "id"],
    "ix_images_job_digit_id": ["job_id", "digit", "id"],
    "ix_images_job_below_confidence_id": ["job_id", "below_threshold", "confidence", "id"],
    "ix_images_job_below_id": ["job_id", "below_threshold", "id"],
}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(name, "images", columns)


def downgrade() -> None:
    for name in reversed(INDEXES):
        op.drop_index(name, table_name="images")
