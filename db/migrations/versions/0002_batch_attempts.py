"""attempts counted per batch; one index for pending-image lookups

A claim used to add 1 to ``attempts`` on each of a batch's image rows: 128 row writes,
each with four index entries, per task. Counting on one ``batches`` row instead cut
PostgreSQL's CPU and the workers' waiting for it (README, Performance). Image rows still
get the attempt number, written with their result.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("batch", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id", "batch"),
    )
    # Jobs in flight keep the attempts their batches have used.
    op.execute(
        "INSERT INTO batches (job_id, batch, attempts) "
        "SELECT job_id, batch, MAX(attempts) FROM images GROUP BY job_id, batch"
    )
    with op.batch_alter_table("images", schema=None) as batch_op:
        # (job_id, status, batch) serves the claim, the pending probe and resume alike; the
        # two indexes it replaces each cost an entry on every status change.
        batch_op.create_index("ix_images_job_status_batch", ["job_id", "status", "batch"])
        batch_op.drop_index("ix_images_job_batch")
        batch_op.drop_index("ix_images_job_status")


def downgrade() -> None:
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.create_index("ix_images_job_status", ["job_id", "status"])
        batch_op.create_index("ix_images_job_batch", ["job_id", "batch"])
        batch_op.drop_index("ix_images_job_status_batch")
    op.execute(
        "UPDATE images SET attempts = (SELECT b.attempts FROM batches b "
        "WHERE b.job_id = images.job_id AND b.batch = images.batch) "
        "WHERE status = 'pending'"
    )
    op.drop_table("batches")
