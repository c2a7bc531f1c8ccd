"""docs/ARCHITECTURE.md stays in step with the code: the layer rule holds, every module the
document names exists, and its module map names every package of app/, model/ and store/."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
LAYERS = ("app", "model", "store")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize(
    ("layer", "forbidden"), [("model", {"app", "store"}), ("store", {"app", "model"})]
)
def test_model_and_store_never_import_each_other_or_app(layer: str, forbidden: set[str]) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imports(path) & forbidden)
        for path in (ROOT / layer).rglob("*.py")
        if _imports(path) & forbidden
    }
    assert offenders == {}


def _exists(dotted: str) -> bool:
    parts = dotted.split(".")
    # `store.index.ConceptIndex` or `model.photos.prepare_query`: the longest module prefix.
    for end in range(len(parts), 0, -1):
        base = ROOT.joinpath(*parts[:end])
        if base.with_suffix(".py").is_file() or (base / "__init__.py").is_file():
            return end >= min(len(parts), 2) or len(parts) == 1
    return False


def test_every_module_the_document_names_exists() -> None:
    dotted = set(re.findall(r"\b((?:app|model|store)(?:\.[a-z_][a-z0-9_]*)+)\b", DOC))
    paths = set(re.findall(r"\b((?:app|model|store|tests|bench)/[\w/]+\.py)\b", DOC))
    missing = sorted(name for name in dotted if not _exists(name))
    missing += sorted(path for path in paths if not (ROOT / path).is_file())
    assert missing == [], "docs/ARCHITECTURE.md names modules that do not exist"


def test_the_module_map_names_every_package() -> None:
    diagrams = re.findall(r"```mermaid\n(.*?)```", DOC, flags=re.S)
    assert diagrams, "docs/ARCHITECTURE.md has no mermaid diagram"
    text = "\n".join(diagrams)
    packages = [
        f"{layer}.{child.name}"
        for layer in LAYERS
        for child in sorted((ROOT / layer).iterdir())
        if (child / "__init__.py").is_file()
    ]
    missing = [name for name in packages if name not in text]
    assert missing == [], "the mermaid diagrams of docs/ARCHITECTURE.md miss these packages"


def test_no_file_points_outside_the_repository_for_its_design() -> None:
    offenders = []
    for layer in (*LAYERS, "tests", "bench", "training", "evaluation", "docs"):
        for path in (ROOT / layer).rglob("*"):
            if path.suffix not in {".py", ".md"} or path.name == Path(__file__).name:
                continue
            if path.is_file() and "DESIGN.md" in path.read_text(errors="replace"):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
