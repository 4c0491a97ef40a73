"""batches.resent_at: when the workers' reconciler last sent the batch again

The reconciler (worker/reconciler.py) sends again a batch whose message the broker lost
(pending images, no progress, no message queued or unacknowledged). It records the time
here and waits a whole ``SIGNDIGITS_STALL_SECONDS`` before it may send the same batch
again, so a batch is re-sent at most once per stall period however often its message is
lost, and never floods the queue. NULL: never re-sent.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("batches", sa.Column("resent_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("batches", "resent_at")
