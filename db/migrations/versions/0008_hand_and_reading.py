"""images.hand and images.reading: where the hands were and how the photo was read

The model now reads hands, not pixels: each classified row keeps the hands found (their
boxes, landmarks and the square the landmark model read, as JSON in the photo's own
pixels) so the web and ``predict --preview`` can show what the digit came from, and how
the photo was read ("hand landmarks", "... on a padded copy", "no hand found"), so a
photo with no digit is told apart from one that could not be decoded. Both nullable:
rows classified before this migration, pending rows and error rows have neither.

Revision ID: 0008
Revises: 0007
Create Date: 2027-01-12
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain add_column, never batch mode: on SQLite that recreates the table (see 0007).
    op.add_column("images", sa.Column("hand", sa.JSON(), nullable=True))
    op.add_column("images", sa.Column("reading", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("images", "reading")
    op.drop_column("images", "hand")
