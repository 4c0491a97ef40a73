"""images.etag: the ETag of an s3:// job's object, as the producer listed it

A job's folder may be a prefix in object storage (``s3://bucket/prefix``). The producer
records each object's ETag beside its key, and a worker asks the storage for that object
only (``If-Match``): an object replaced after submit is refused as that image's error,
as a file swapped after the walk is. NULL for folder jobs and rows written before.

Revision ID: 0014
Revises: 0011
Create Date: 2027-02-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain add_column, never batch mode: on SQLite that recreates the table (see 0007).
    op.add_column("images", sa.Column("etag", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("images", "etag")
