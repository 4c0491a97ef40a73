"""reviews.hand_digits: a photo of several hands is reviewed hand by hand

A reviewer corrects one hand of a group photo (its digit, or "not a hand") rather than
typing the whole string again. Each such review row keeps the photo's whole answer after
it, hand by hand in reading order (a digit, or NULL for "not a hand"), so the newest row
stays the image's current answer as before; ``digit`` holds the one digit left when
exactly one hand remains, and ``unusable`` is true when none does. NULL on reviews of the
photo as a whole (every review before this migration).

Revision ID: 0012
Revises: 0011
Create Date: 2027-01-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("reviews", sa.Column("hand_digits", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("reviews", "hand_digits")
