"""Alembic migrations: the only way the schema is made."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alembic.runtime.environment import NameFilterParentNames, NameFilterType

#: Tables that a library owns and creates in our migrations (procrastinate's job queue):
#: autogenerate and the model/schema comparison leave them alone.
LIBRARY_TABLE_PREFIXES = ("procrastinate_",)


def include_name(
    name: str | None, type_: NameFilterType, parent_names: NameFilterParentNames
) -> bool:
    """Alembic's ``include_name`` hook: compare only the tables our models describe."""
    return not (type_ == "table" and (name or "").startswith(LIBRARY_TABLE_PREFIXES))
