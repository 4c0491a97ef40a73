"""an index for a job's image rows in confidence order

The web's grid and the API list a job's rows lowest confidence first, keyset-paginated
on ``(confidence, id)``. Without this index every page sorts all of the job's rows: a
100,000-image job's first page took the time of the whole sort. With it, any page reads
only its own rows.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_images_job_confidence_id", "images", ["job_id", "confidence", "id"])


def downgrade() -> None:
    op.drop_index("ix_images_job_confidence_id", table_name="images")
