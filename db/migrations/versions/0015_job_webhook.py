"""jobs.webhook_*: the signed call a job makes when it ends, and what became of it

A job submitted with a webhook URL (``--webhook``, the API's ``webhook``, or
``SIGNDIGITS_WEBHOOK_URL``) records it here. ``webhook_state`` is ``pending`` until the
job ends, then ``sending`` (claimed by exactly one process with ``UPDATE ... WHERE
webhook_state = 'pending'``), then ``delivered`` (a 2xx) or ``failed`` (no 2xx before the
deadline). Attempts, the last answer, and when it was claimed, next due and delivered
are kept so ``status`` and the job page can say what happened. NULL everywhere for a job
without a webhook, and for every job made before this migration.

Revision ID: 0015
Revises: 0011
Create Date: 2027-02-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_COLUMNS = (
    ("webhook_url", sa.Text()),
    ("webhook_state", sa.String(16)),
    ("webhook_attempts", sa.Integer()),
    ("webhook_last_status", sa.Text()),
    ("webhook_claimed_at", sa.DateTime(timezone=True)),
    ("webhook_next_at", sa.DateTime(timezone=True)),
    ("webhook_delivered_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    # Plain add_column, never batch mode: on SQLite that recreates jobs, and its ON DELETE
    # CASCADE would delete every image row (see 0007).
    for name, kind in _COLUMNS:
        op.add_column("jobs", sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    for name, _ in reversed(_COLUMNS):
        op.drop_column("jobs", name)
