"""caption history: kept captions (opt-in per user) and their corrections

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # A plain ADD COLUMN: a batch rebuild of `users` on SQLite would cascade its deletes.
    op.add_column(
        "users",
        sa.Column("keep_captions", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "caption_records",
        sa.Column("id", _BIG_ID, primary_key=True, autoincrement=True),
        sa.Column(
            "user_id", _BIG_ID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("blob_key", sa.String(length=80), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("options", sa.Text(), nullable=False),
        sa.Column("concepts_used", sa.Text(), nullable=False),
        sa.Column("concepts_mentioned", sa.Text(), nullable=False),
        sa.Column("caption", sa.Text(), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("feedback", sa.Text(), nullable=True),
        sa.Column("feedback_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("taught", sa.Text(), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_caption_records_user_id", "caption_records", ["user_id"])
    op.create_index("ix_caption_records_created_at", "caption_records", ["created_at"])
    op.create_index("ix_caption_records_sha256", "caption_records", ["sha256"])


def downgrade() -> None:
    op.drop_table("caption_records")
    op.drop_column("users", "keep_captions")
