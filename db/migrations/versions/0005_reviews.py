"""reviews: a person's digit (or "unusable") for an image, every answer kept

The threshold flags the images the model is unsure of; this table is where a person's
answer goes. Rows are only ever added: an image's current answer is its newest row
(highest id), the earlier ones are its history. ``images`` is not changed.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "reviews",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("image_id", _ID, sa.ForeignKey("images.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("digit", sa.SmallInteger(), nullable=True),
        sa.Column("unusable", sa.Boolean(), nullable=False),
        sa.Column("reviewer", sa.String(length=255), nullable=False),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_reviews_image_id", "reviews", ["image_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_reviews_image_id", table_name="reviews")
    op.drop_table("reviews")
