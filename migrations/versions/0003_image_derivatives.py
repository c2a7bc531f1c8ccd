"""derivatives of each reference photo: demonstration image and thumbnail

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

Existing rows get NULLs; `repic derivatives` makes the files and fills the columns. Until then a
caption makes the demonstration image from the stored photo, as before.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("concept_images") as batch:
        batch.add_column(sa.Column("prompt_blob_key", sa.String(length=80), nullable=True))
        batch.add_column(sa.Column("prompt_width", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("prompt_height", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("prompt_max_pixels", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("thumb_blob_key", sa.String(length=80), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("concept_images") as batch:
        batch.drop_column("thumb_blob_key")
        batch.drop_column("prompt_max_pixels")
        batch.drop_column("prompt_height")
        batch.drop_column("prompt_width")
        batch.drop_column("prompt_blob_key")
