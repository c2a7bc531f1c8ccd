"""Where the service's CPU goes under load: py-spy samples of the uvicorn process, grouped by
what the sampled code does. Optional: used when ``py-spy`` is on PATH (``pip install py-spy``)."""

from __future__ import annotations

import shutil
import signal
import subprocess
from collections import Counter
from pathlib import Path

#: First match wins, so the specific groups come before the frames every stack shares.
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "CLIP: crop preprocessing (resize to the input, to_tensor, normalise)",
        (
            "torchvision/",
            "open_clip/transform.py",
            "ClipEmbedder.shrink_to_input",
            "preprocess_batch",
        ),
    ),
    ("CLIP: forward pass", ("ClipEmbedder.embed",)),
    ("SQL (SQLAlchemy + sqlite3)", ("sqlalchemy/",)),
    (
        "VLM call: openai client, body, HTTP",
        ("openai_backend.py", "openai/", "httpx2/", "httpcore2/"),
    ),
    ("JSON log lines", ("logging/", "app/core/logs.py")),
    ("image decode, re-encode, crops", ("model/images.py", "model/regions.py", "PIL/")),
    ("FAISS search", ("store/index.py",)),
    ("HTTP server, routing, multipart", ("uvicorn/", "starlette/", "fastapi/", "multipart/")),
    ("thread-pool hand-offs (anyio)", ("anyio/",)),
)
OTHER = "other"
#: Leaf frames of threads that wait (py-spy in non-blocking mode cannot always tell).
_WAITING = ("Condition.wait", "Event.wait", "Runner.run", "select (selectors")
_RATE_HZ = 200


def available() -> bool:
    return shutil.which("py-spy") is not None


class Sampler:
    """``py-spy record`` attached to one process until :meth:`stop`."""

    def __init__(self, pid: int, out: Path) -> None:
        exe = shutil.which("py-spy")
        if exe is None:
            raise RuntimeError("py-spy is not on PATH; `pip install py-spy` to profile")
        self.out = out
        command = [exe, "record", "-p", str(pid), "-r", str(_RATE_HZ), "-f", "raw"]
        self.process = subprocess.Popen(
            [*command, "-o", str(out), "--nonblocking"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> dict[str, float]:
        """Stop sampling; the share of busy samples per category, largest first."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return categorize(self.out.read_text(encoding="utf-8", errors="replace"))


def categorize(raw: str) -> dict[str, float]:
    """Shares per category of py-spy's raw (collapsed-stack) output, waiting samples left out."""
    counts: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        if stack.rsplit(";", 1)[-1].startswith(_WAITING):
            continue
        name = next((n for n, keys in CATEGORIES if any(k in stack for k in keys)), OTHER)
        counts[name] += int(count)
    total = sum(counts.values())
    return {name: n / total for name, n in counts.most_common()} if total else {}
