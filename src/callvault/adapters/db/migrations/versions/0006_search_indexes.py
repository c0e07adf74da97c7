"""search indexes: blind index + call time, for newest-first lookups

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 09:40:00

A lookup by caller or personnummer across every unit is answered newest
first.  With only (blind index, care unit, call time) the database reads
all of that person's calls and sorts them: a frequent caller's thousands of
calls for a page of 50.  (blind index, call time) gives them in order, so a
page reads 50-odd rows whoever is looked up (docs/scale.md).
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_recordings_caller_started", "recordings", ["caller_bidx", "started_at"])
    op.create_index("ix_recordings_pnr_started", "recordings", ["pnr_bidx", "started_at"])


def downgrade() -> None:
    op.drop_index("ix_recordings_pnr_started", table_name="recordings")
    op.drop_index("ix_recordings_caller_started", table_name="recordings")
