"""deleted_totals: what deleted jobs took with them, so /metrics' counters never fall

``GET /metrics`` counts image rows by outcome and webhook POSTs from the rows there at
scrape time. Deleting a job removed its rows, the counters fell, and Prometheus read the
fall as a counter reset (``rate()`` and ``increase()`` then report nonsense). Every
delete now adds what the job's rows counted to this table, one row per name (``jobs``,
``images``, ``done``, ``below_threshold``, ``errors``, ``cancelled``,
``webhook_attempts``), in the transaction that deletes it; the scrape adds them back.
Empty at first: jobs deleted before this migration are not counted.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deleted_totals",
        sa.Column("name", sa.String(length=32), primary_key=True),
        sa.Column("total", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("deleted_totals")
