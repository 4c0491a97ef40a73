"""jobs.name: a name people tell jobs apart by

Ids and upload folders (``uploads/7de9...``) say nothing to a person: every job gets a
name, the folder's (or the uploaded zip's) by default, which the pages, ``status`` and
the download file names show, and which can be changed. Jobs recorded before this
migration are named after their folder's last component.

Revision ID: 0016
Revises: 0012
Create Date: 2027-01-25
"""

import posixpath

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain add_column (not batch mode): on SQLite batch mode recreates ``jobs``, and
    # dropping the old table deletes every image row through their ON DELETE CASCADE.
    op.add_column("jobs", sa.Column("name", sa.Text(), nullable=False, server_default=""))
    connection = op.get_bind()
    jobs = sa.table("jobs", sa.column("id", sa.String), sa.column("root", sa.Text),
                    sa.column("name", sa.Text))
    for job_id, root in connection.execute(sa.select(jobs.c.id, jobs.c.root)).all():
        name = posixpath.basename(root.rstrip("/")) or root
        connection.execute(jobs.update().where(jobs.c.id == job_id).values(name=name[:200]))


def downgrade() -> None:
    op.drop_column("jobs", "name")
