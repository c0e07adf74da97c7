"""review extracts

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 09:10:00

Log review (R17): review items get the reviewer's comment and the recording
concerned.  Patient log extracts (R18): the recordings each search listed.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("review_items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("comment", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("recording_id", sa.Uuid(), nullable=True))
        batch_op.create_index("ix_review_seq", ["audit_seq", "kind"], unique=False)
    op.create_table(
        "audit_search_hits",
        sa.Column("recording_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("recording_id", "seq"),
    )
    with op.batch_alter_table("audit_search_hits", schema=None) as batch_op:
        batch_op.create_index("ix_search_hits_seq", ["seq"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_search_hits", schema=None) as batch_op:
        batch_op.drop_index("ix_search_hits_seq")
    op.drop_table("audit_search_hits")
    with op.batch_alter_table("review_items", schema=None) as batch_op:
        batch_op.drop_index("ix_review_seq")
        batch_op.drop_column("recording_id")
        batch_op.drop_column("comment")
