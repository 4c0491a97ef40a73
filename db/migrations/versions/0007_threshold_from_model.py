"""jobs.threshold_from_model: whether the job's threshold is its model's default

A job's threshold and model version are what its submitter read from its own model
file. When the workers serve another model (retrained, and deployed to them first), a
threshold given by no one belongs to a model that classified nothing: the flags must use
the default of the model that classified each image (each row records its version). A
threshold someone gave (``--threshold``, ``SIGNDIGITS_THRESHOLD``, the API's field) stays
the job's for every image. Jobs recorded before this migration count as given: their
flags were made with their own threshold, and it keeps applying to the rest.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("threshold_from_model", sa.Boolean(), nullable=False,
                                    server_default=sa.false()))


def downgrade() -> None:
    # Not in batch mode: on SQLite that recreates ``jobs``, and dropping the old table
    # deleted every image row through their ON DELETE CASCADE.
    op.drop_column("jobs", "threshold_from_model")
