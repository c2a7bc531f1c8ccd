"""docs/ARCHITECTURE.md stays in step with the code: the layer rule holds, every module the
document names exists, and its module map names every package of app/, model/ and store/.
Services get narrow collaborators, never the runtime, and routes get services as dependencies."""

from __future__ import annotations

import ast
import math
import re
from pathlib import Path

import pytest
from fastapi import FastAPI

from app.http.deps import history_service, retrieval_service
from app.services.retrieval import Match
from store.models import Concept, ConceptImage
from tests.helpers import images
from tests.helpers.api import UserClient, retrieve

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


def _modules(dotted: str) -> set[str]:
    """The full module names imported by the modules of ``dotted`` (type-checking-only imports
    included)."""
    found: set[str] = set()
    for path in ROOT.joinpath(*dotted.split(".")).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(f"{path.stem}:{alias.name}" for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(f"{path.stem}:{node.module}")
    return found


@pytest.mark.parametrize(
    ("package", "forbidden", "allowed"),
    [
        (
            "app.services",
            ("app.http", "app.api", "app.core.runtime", "app.core.wiring", "app.main"),
            set(),
        ),
        ("app.api", ("store",), set()),
        # The composition root hands the job services the API's result formats.
        ("app.core", ("app.http", "app.api"), {"wiring:app.api.job_schemas"}),
    ],
)
def test_services_speak_no_http_and_routes_read_no_store(
    package: str, forbidden: tuple[str, ...], allowed: set[str]
) -> None:
    def banned(module: str) -> bool:
        return any(module == f or module.startswith(f"{f}.") for f in forbidden)

    found = _modules(package) - allowed
    offenders = sorted(f for f in found if banned(f.split(":")[1]))
    assert offenders == []


def _annotation_names(node: ast.expr | None) -> set[str]:
    if node is None:
        return set()
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return _annotation_names(ast.parse(node.value, mode="eval").body)
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | {
        n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)
    }


def test_no_service_takes_the_runtime() -> None:
    """Every service and function of app/services names the collaborators it uses."""
    offenders = []
    for path in sorted((ROOT / "app" / "services").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            args = node.args
            params = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
            for arg in params:
                if arg is not None and "Runtime" in _annotation_names(arg.annotation):
                    offenders.append(f"{path.name}:{node.name}({arg.arg})")
    assert offenders == []


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


class FakeRetrieval:
    """A hand-written retrieval service: built from the few values it needs (no runtime, no
    database, no model), it finds the one concept it was given in every photo."""

    def __init__(self, concept: Concept, image: ConceptImage, *, input_size: int) -> None:
        self.concept, self.image, self.input_size = concept, image, input_size
        self.asked: list[tuple[int, int, float]] = []

    def clip_min_side(self) -> int:
        return self.input_size

    def retrieve(
        self, user_id: int, query: object, *, top_k: int, min_score: float, **_: object
    ) -> list[Match]:
        self.asked.append((user_id, top_k, min_score))
        return [Match(self.concept, self.image, 0.5, (1, 2, 30, 40))]


class FakeHistory:
    """A hand-written history service: every user has opted in to keeping captions."""

    def __init__(self, *, keeps: bool) -> None:
        self.keeps_captions = keeps

    def keeps(self, user_id: int) -> bool:
        return self.keeps_captions


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_routes_get_their_services_as_dependencies(app: FastAPI, alice: UserClient) -> None:
    fake = FakeRetrieval(
        Concept(id=77, name="bo", category="dog"), ConceptImage(id=5), input_size=32
    )
    app.dependency_overrides[retrieval_service] = lambda: fake
    app.dependency_overrides[history_service] = lambda: FakeHistory(keeps=True)
    try:
        resp = await retrieve(alice, images.pattern(3), top_k=3, min_score=0.25)
        settings = await alice.client.get("/captions/settings")
    finally:
        app.dependency_overrides.clear()
    assert resp.status_code == 200, resp.text
    (found,) = resp.json()["data"]
    assert found["concept"] == {"id": 77, "name": "bo"}
    assert (found["category"], found["image_id"], found["box"]) == ("dog", 5, [1, 2, 30, 40])
    assert math.isclose(found["score"], 0.5)
    assert [(top_k, min_score) for _, top_k, min_score in fake.asked] == [(3, 0.25)]
    assert settings.json() == {"keep_captions": True}
    # Without the overrides the real services answer: Alice has no concepts and keeps nothing.
    assert (await retrieve(alice, images.pattern(3))).json()["data"] == []
    assert (await alice.client.get("/captions/settings")).json() == {"keep_captions": False}
