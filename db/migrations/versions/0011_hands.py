"""hands, and images.digits / images.hand_count: several digits in one photo

A photo may show several hands (people side by side, both hands of one person, a
collage). Each hand found becomes a row of ``hands``: its place in reading order (left
to right, rows top to bottom), its box in the photo's own pixels (after EXIF rotation),
its digit, confidence, threshold flag and probabilities. ``images.digits`` is the string
read ("407"; "7" for one hand; "" for none) and ``images.hand_count`` how many were read;
``images.digit`` keeps its meaning for a photo with exactly one hand and is NULL for none
or several. Rows classified before this migration have no hands rows and NULL digits.

Revision ID: 0011
Revises: 0010
Create Date: 2027-01-20
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # Plain add_column, never batch mode: on SQLite that recreates the table (see 0007).
    op.add_column("images", sa.Column("digits", sa.Text(), nullable=True))
    op.add_column("images", sa.Column("hand_count", sa.SmallInteger(), nullable=True))
    op.create_table(
        "hands",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("image_id", _ID, sa.ForeignKey("images.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("position", sa.SmallInteger(), nullable=False),
        sa.Column("x0", sa.Integer(), nullable=False),
        sa.Column("y0", sa.Integer(), nullable=False),
        sa.Column("x1", sa.Integer(), nullable=False),
        sa.Column("y1", sa.Integer(), nullable=False),
        sa.Column("digit", sa.SmallInteger(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("below_threshold", sa.Boolean(), nullable=False),
        sa.Column("probabilities", sa.JSON(), nullable=True),
        # One row per place: a batch delivered twice finds its hands already written.
        sa.UniqueConstraint("image_id", "position", name="uq_hands_image_position"),
    )


def downgrade() -> None:
    op.drop_table("hands")
    op.drop_column("images", "hand_count")
    op.drop_column("images", "digits")
