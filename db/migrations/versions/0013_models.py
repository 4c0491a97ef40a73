"""models: the registry of model artifacts, and which one the workers serve

One row per model artifact a team made (``signdigits adapt``, or registered by hand):
its ``version`` (the content hash inside both files), a ``name``, the ``parent`` version
it was fine-tuned from, ``file`` (its ``.keras`` path inside SIGNDIGITS_MODELS_DIR; the
``.onnx`` sits beside it), ``figures`` (its evaluation, lineage and last comparison, as
JSON), ``created_at`` and ``promoted_at``. The workers serve the row promoted last; with
none promoted they serve SIGNDIGITS_MODEL_PATH or the shipped model, as before.

Revision ID: 0013
Revises: 0011
Create Date: 2027-01-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("version", sa.String(length=64), primary_key=True),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("parent", sa.String(length=64), nullable=True),
        sa.Column("file", sa.Text(), nullable=False),
        sa.Column("figures", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("promoted_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("name", name="uq_models_name"),
    )
    # Every batch asks which model is promoted: the newest promoted_at, from this index.
    op.create_index("ix_models_promoted_at", "models", ["promoted_at"])


def downgrade() -> None:
    op.drop_index("ix_models_promoted_at", table_name="models")
    op.drop_table("models")
