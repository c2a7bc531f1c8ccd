"""ids never reused on SQLite (AUTOINCREMENT); stored size of each photo for the quotas

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

SQLite hands out max(id) + 1, so deleting the newest concept and creating another gives the new
one the old id: a caller holding the stale id would silently act on the wrong concept. Only
``AUTOINCREMENT`` tables never go back, and SQLite cannot add it to an existing table, so the four
tables are rebuilt with their rows (children dropped first, so no ON DELETE CASCADE fires),
with every column the earlier revisions (0001-0003) made.
PostgreSQL identities never reuse values: there only the new column is added.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_PARENTS_FIRST = ("users", "api_keys", "concepts", "concept_images")


def _create_tables() -> None:
    auto = {"sqlite_autoincrement": True}
    op.create_table(
        "users",
        sa.Column("id", _ID, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("index_version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
        **auto,
    )
    op.create_table(
        "api_keys",
        sa.Column("id", _ID, nullable=False),
        sa.Column("user_id", _ID, nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("prefix"),
        **auto,
    )
    op.create_index("ix_api_keys_user_id", "api_keys", ["user_id"])
    op.create_table(
        "concepts",
        sa.Column("id", _ID, nullable=False),
        sa.Column("user_id", _ID, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("name_key", sa.String(length=64), nullable=False),
        sa.Column("info", sa.Text(), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=True),
        sa.Column("display_name", sa.String(length=64), nullable=True),  # from 0002
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id", "name_key", name="uq_concepts_user_name"),
        **auto,
    )
    op.create_index("ix_concepts_user_id", "concepts", ["user_id"])
    op.create_table(
        "concept_images",
        sa.Column("id", _ID, nullable=False),
        sa.Column("concept_id", _ID, nullable=False),
        sa.Column("user_id", _ID, nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("mime", sa.String(length=32), nullable=False),
        sa.Column("blob_key", sa.String(length=80), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=True),
        sa.Column("embedding_dim", sa.Integer(), nullable=True),
        sa.Column("embedder_id", sa.String(length=200), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        # from 0003: the derivatives
        sa.Column("prompt_blob_key", sa.String(length=80), nullable=True),
        sa.Column("prompt_width", sa.Integer(), nullable=True),
        sa.Column("prompt_height", sa.Integer(), nullable=True),
        sa.Column("prompt_max_pixels", sa.Integer(), nullable=True),
        sa.Column("thumb_blob_key", sa.String(length=80), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["concept_id"], ["concepts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("concept_id", "sha256", name="uq_concept_images_concept_sha"),
        **auto,
    )
    op.create_index("ix_concept_images_concept_id", "concept_images", ["concept_id"])
    op.create_index("ix_concept_images_sha256", "concept_images", ["sha256"])
    op.create_index("ix_concept_images_user_id", "concept_images", ["user_id"])


def _columns(table: str) -> list[str]:
    rows = op.get_bind().execute(sa.text(f'PRAGMA table_info("{table}")')).all()
    return [str(r[1]) for r in rows]


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.add_column("concept_images", sa.Column("size_bytes", sa.BigInteger(), nullable=True))
        return
    columns = {t: _columns(t) for t in _PARENTS_FIRST}
    for table in _PARENTS_FIRST:
        op.execute(f'CREATE TABLE "_old_{table}" AS SELECT * FROM "{table}"')  # noqa: S608 - fixed table names
    for table in reversed(_PARENTS_FIRST):
        op.drop_table(table)
    _create_tables()
    for table in _PARENTS_FIRST:
        names = ", ".join(f'"{c}"' for c in columns[table])
        op.execute(f'INSERT INTO "{table}" ({names}) SELECT {names} FROM "_old_{table}"')  # noqa: S608
        op.drop_table(f"_old_{table}")


def downgrade() -> None:
    # AUTOINCREMENT stays on SQLite: it is invisible to the older code.
    with op.batch_alter_table("concept_images") as batch_op:
        batch_op.drop_column("size_bytes")
