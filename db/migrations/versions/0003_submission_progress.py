"""the submission's progress on the job; sent batches; exact bytes of non-UTF-8 names

A producer that died part-way left a job that looked queued, then stalled, for ever, and
``resume`` could neither finish the walk nor tell sent batches from unsent ones. A file
name that was not valid UTF-8 stopped the whole submission.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("producer", sa.String(length=255), nullable=True))
        batch_op.add_column(
            sa.Column("producer_seen_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("submission_stopped", sa.Text(), nullable=True))
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.add_column(sa.Column("raw_path", sa.LargeBinary(), nullable=True))
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=True))
    # Jobs whose walk finished (their batch count was written at its end) were submitted,
    # and every one of their batches was sent; the others were interrupted.
    op.execute("UPDATE jobs SET submitted_at = created_at WHERE total_batches > 0")
    op.execute(
        "UPDATE batches SET enqueued_at = (SELECT j.created_at FROM jobs j "
        "WHERE j.id = batches.job_id) "
        "WHERE job_id IN (SELECT id FROM jobs WHERE total_batches > 0)"
    )


def downgrade() -> None:
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.drop_column("enqueued_at")
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.drop_column("raw_path")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("submission_stopped")
        batch_op.drop_column("producer_seen_at")
        batch_op.drop_column("producer")
        batch_op.drop_column("submitted_at")
