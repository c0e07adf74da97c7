"""jobs

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 09:45:00

Background jobs (docs/jobs.md): the embedded runner's job table, the
periodic schedules' last slots, and progress of jobs run by procrastinate.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_RUNNING = sa.text("state = 'running'")
_QUEUED = sa.text("state = 'queued'")


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("lock_key", sa.String(length=64), nullable=True),
        sa.Column("queueing_key", sa.String(length=64), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("run_after", sa.DateTime(), nullable=False),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("progress_done", sa.BigInteger(), nullable=False),
        sa.Column("progress_total", sa.BigInteger(), nullable=True),
        sa.Column("cursor", sa.Text(), nullable=True),
        sa.Column("last_error", sa.String(length=48), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_jobs_ready", "jobs", ["state", "run_after"], unique=False)
    op.create_index(
        "uq_jobs_running_lock",
        "jobs",
        ["lock_key"],
        unique=True,
        sqlite_where=_RUNNING,
        postgresql_where=_RUNNING,
    )
    op.create_index(
        "uq_jobs_queueing_key",
        "jobs",
        ["queueing_key"],
        unique=True,
        sqlite_where=_QUEUED,
        postgresql_where=_QUEUED,
    )
    op.create_table(
        "job_schedules",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("last_slot", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "job_progress",
        sa.Column("job_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("progress_done", sa.BigInteger(), nullable=False),
        sa.Column("progress_total", sa.BigInteger(), nullable=True),
        sa.Column("cursor", sa.Text(), nullable=True),
        sa.Column("last_error", sa.String(length=48), nullable=True),
        sa.PrimaryKeyConstraint("job_id"),
    )


def downgrade() -> None:
    op.drop_table("job_progress")
    op.drop_table("job_schedules")
    op.drop_index("uq_jobs_queueing_key", table_name="jobs")
    op.drop_index("uq_jobs_running_lock", table_name="jobs")
    op.drop_index("ix_jobs_ready", table_name="jobs")
    op.drop_table("jobs")
