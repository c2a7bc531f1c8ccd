"""blob garbage records for the grace-period sweep

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blob_garbage",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("blob_key", sa.String(length=80), nullable=False),
        sa.Column("unreferenced_since", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sha256"),
    )
    op.create_index(
        "ix_blob_garbage_unreferenced_since", "blob_garbage", ["unreferenced_since"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_blob_garbage_unreferenced_since", table_name="blob_garbage")
    op.drop_table("blob_garbage")
