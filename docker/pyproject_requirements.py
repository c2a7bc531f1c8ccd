"""Print the requirement lines of pyproject.toml (plus chosen extras), one per line.

The image installs these before copying the source, so the dependency layer is rebuilt only
when pyproject.toml changes.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path


def requirements(pyproject: Path, extras: list[str]) -> list[str]:
    """The project's dependencies followed by those of each named extra."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    optional: dict[str, list[str]] = project.get("optional-dependencies", {})
    unknown = [extra for extra in extras if extra not in optional]
    if unknown:
        raise SystemExit(f"unknown extras {unknown}; pyproject.toml offers {sorted(optional)}")
    lines = list(project["dependencies"])
    for extra in extras:
        lines.extend(optional[extra])
    return lines


def main(argv: list[str]) -> None:
    if len(argv) not in (2, 3):
        raise SystemExit("usage: pyproject_requirements.py PYPROJECT [EXTRA,EXTRA...]")
    extras = [name.strip() for name in (argv[2] if len(argv) == 3 else "").split(",")]
    print("\n".join(requirements(Path(argv[1]), [name for name in extras if name])))


if __name__ == "__main__":
    main(sys.argv)
