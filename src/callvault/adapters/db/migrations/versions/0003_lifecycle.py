"""lifecycle: recording policies, keep-until stamps, legal holds, shred queue

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 09:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("recordings") as batch:
        batch.add_column(sa.Column("keep_until", sa.DateTime(), nullable=True))
        batch.create_index("ix_recordings_keep_until", ["keep_until"])
    op.create_table(
        "recording_policies",
        sa.Column("care_unit", sa.String(length=64), nullable=False),
        sa.Column("retention_class", sa.String(length=16), nullable=False),
        sa.Column("purpose", sa.String(length=500), nullable=False),
        sa.Column("legal_basis", sa.String(length=500), nullable=False),
        sa.Column("keep_days", sa.Integer(), nullable=False),
        sa.Column("active", sa.Integer(), nullable=False),
        sa.Column("changed_at", sa.DateTime(), nullable=False),
        sa.Column("changed_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("care_unit", "retention_class"),
    )
    op.create_table(
        "legal_holds",
        sa.Column("recording_id", sa.Uuid(), nullable=False),
        sa.Column("reference", sa.String(length=64), nullable=False),
        sa.Column("set_by", sa.String(length=64), nullable=False),
        sa.Column("set_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("recording_id"),
    )
    op.create_table(
        "shred_queue",
        sa.Column("object_name", sa.String(length=32), nullable=False),
        sa.Column("queued_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("object_name"),
    )


def downgrade() -> None:
    op.drop_table("shred_queue")
    op.drop_table("legal_holds")
    op.drop_table("recording_policies")
    with op.batch_alter_table("recordings") as batch:
        batch.drop_index("ix_recordings_keep_until")
        batch.drop_column("keep_until")
