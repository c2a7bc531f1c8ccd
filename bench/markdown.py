"""BENCHMARKS.md is shared by several benchmarks: each owns one section between markers."""

from __future__ import annotations

import re
from pathlib import Path


def write_section(path: Path, name: str, body: str) -> None:
    """Replace the ``bench:<name>`` section of ``path`` (or append it), keeping the rest."""
    start, end = f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"
    block = f"{start}\n{body}\n{end}"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _m: block, text)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")
