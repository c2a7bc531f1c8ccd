"""The generated SDKs, as users get them: current with the app, and working against a live server.

One uvicorn subprocess (demo tiny models) serves a Python scenario (clients/python) and a
TypeScript scenario (clients/typescript/test, node's test runner after `tsc --strict`). Both
use only generated code; each has its own user."""

from __future__ import annotations

import filecmp
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.cli.dev import openapi_document
from model.tiny.clip import TinyClip
from tests.helpers import images
from tests.helpers.node_tools import TS, node_tool
from tests.helpers.server import create_users, running_server, tiny_model_env

ROOT = Path(__file__).resolve().parents[1]
CLIENTS = ROOT / "clients"
SDKGEN = ROOT / ".venv-sdkgen" / "bin"
MAX_BYTES = 100_000

sys.path.insert(0, str(CLIENTS / "python"))

from repic_client import AuthenticatedClient  # noqa: E402
from repic_client.api.captions import caption  # noqa: E402
from repic_client.api.concepts import (  # noqa: E402
    add_concept_images,
    create_concept,
    delete_concept,
    get_concept,
    get_concept_image,
    list_concepts,
    update_concept,
)
from repic_client.api.retrieval import retrieve  # noqa: E402
from repic_client.models import (  # noqa: E402
    CaptionForm,
    CaptionPublic,
    ConceptCreateForm,
    ConceptImagesAddForm,
    ConceptPublic,
    ConceptsPublic,
    ConceptUpdate,
    Problem,
    RetrievalPublic,
    RetrieveForm,
)
from repic_client.types import File  # noqa: E402

pytestmark = pytest.mark.live


@dataclass
class Live:
    url: str
    keys: dict[str, str]
    images: Path


@pytest.fixture(scope="module")
def live(
    tmp_path_factory: pytest.TempPathFactory, tiny_clip: TinyClip, tiny_qwen_dir: Path
) -> Iterator[Live]:
    root = tmp_path_factory.mktemp("sdk")
    env = tiny_model_env(
        root, tiny_clip, tiny_qwen_dir, {"REPIC_UPLOAD__MAX_BYTES": str(MAX_BYTES)}
    )
    keys = create_users(env, "py", "ts")
    files = root / "images"
    files.mkdir()
    for seed, name in enumerate(("a.jpg", "b.jpg", "c.jpg"), start=1):
        (files / name).write_bytes(images.pattern(seed))
    (files / "too-big.jpg").write_bytes(images.pattern(9) + b"\0" * MAX_BYTES)
    (files / "notes.txt").write_bytes(b"shopping list: socks, tennis balls\n")
    with running_server(env, root / "server.log") as server:
        yield Live(url=server.url, keys=keys, images=files)


def _photo(live: Live, name: str, mime: str = "image/jpeg") -> File:
    return File(
        payload=io.BytesIO((live.images / name).read_bytes()), file_name=name, mime_type=mime
    )


def _assert_problem(result: object, status: int, kind: str) -> None:
    assert isinstance(result, Problem), result
    assert result.status == status
    assert result.type_ == f"urn:repic:problem:{kind}"
    assert result.detail


def test_python_sdk_scenario(live: Live) -> None:
    with AuthenticatedClient(base_url=live.url, token=live.keys["py"], timeout=120) as client:
        created = create_concept.sync(
            client=client,
            body=ConceptCreateForm(
                name="<rex>",
                info="my beagle",
                category="dog",
                images=[_photo(live, "a.jpg"), _photo(live, "b.jpg")],
            ),
        )
        assert isinstance(created, ConceptPublic), created
        assert created.name == "rex" and len(created.images) == 2
        other = create_concept.sync(
            client=client, body=ConceptCreateForm(name="mia", images=[_photo(live, "c.jpg")])
        )
        assert isinstance(other, ConceptPublic)

        page = list_concepts.sync(client=client, limit=10)
        assert isinstance(page, ConceptsPublic) and page.count == 2
        found = list_concepts.sync(client=client, name="REX")
        assert isinstance(found, ConceptsPublic) and [c.id for c in found.data] == [created.id]

        patched = update_concept.sync(
            created.id, client=client, body=ConceptUpdate(info="my beagle, loves socks")
        )
        assert isinstance(patched, ConceptPublic) and patched.info == "my beagle, loves socks"
        added = add_concept_images.sync(
            created.id, client=client, body=ConceptImagesAddForm(images=[_photo(live, "c.jpg")])
        )
        assert isinstance(added, ConceptPublic) and len(added.images) == 3

        download = get_concept_image.sync_detailed(created.id, created.images[0].id, client=client)
        assert download.status_code == 200
        assert download.headers["content-type"] == "image/jpeg"
        assert download.content[:3] == b"\xff\xd8\xff"

        hits = retrieve.sync(client=client, body=RetrieveForm(image=_photo(live, "a.jpg"), top_k=2))
        assert isinstance(hits, RetrievalPublic) and hits.data
        by_retrieval = caption.sync(
            client=client, body=CaptionForm(image=_photo(live, "a.jpg"), top_k=1)
        )
        assert isinstance(by_retrieval, CaptionPublic) and len(by_retrieval.concepts_used) == 1
        named = caption.sync(
            client=client,
            body=CaptionForm(
                image=_photo(live, "b.jpg"),
                concept_ids=[created.id],
                instruction="What is <rex> doing?",
                max_tokens=8,
            ),
        )
        assert isinstance(named, CaptionPublic)
        assert [(c.id, c.score) for c in named.concepts_used] == [(created.id, None)]

        with AuthenticatedClient(base_url=live.url, token="rpk_not-a-real-key") as stranger:
            _assert_problem(list_concepts.sync(client=stranger), 401, "unauthorized")
        _assert_problem(get_concept.sync(999_999, client=client), 404, "not-found")
        too_big = ConceptImagesAddForm(images=[_photo(live, "too-big.jpg")])
        _assert_problem(
            add_concept_images.sync(created.id, client=client, body=too_big), 413, "image-too-large"
        )
        text = RetrieveForm(image=_photo(live, "notes.txt", "text/plain"))
        _assert_problem(retrieve.sync(client=client, body=text), 415, "unsupported-image-type")
        invalid = caption.sync(
            client=client, body=CaptionForm(image=_photo(live, "a.jpg"), top_k=99)
        )
        _assert_problem(invalid, 422, "validation-error")
        assert isinstance(invalid, Problem) and isinstance(invalid.errors, list)
        assert invalid.errors[0].loc == ["body", "top_k"]
        _assert_problem(get_concept.sync(10**20, client=client), 422, "validation-error")

        deleted = delete_concept.sync_detailed(created.id, client=client)
        assert deleted.status_code == 204
        _assert_problem(get_concept.sync(created.id, client=client), 404, "not-found")


def test_typescript_sdk_scenario(live: Live, tmp_path: Path) -> None:
    tsc = node_tool("tsc")
    check = subprocess.run(
        [tsc, "--strict", "--noEmit", "-p", "test/tsconfig.json"],
        cwd=TS,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    out = tmp_path / "build"
    emit = [tsc, "-p", "test/tsconfig.json", "--noCheck", "--outDir", str(out)]
    subprocess.run(emit, cwd=TS, check=True, capture_output=True, timeout=120)
    env = {
        **os.environ,
        "REPIC_URL": live.url,
        "REPIC_KEY": live.keys["ts"],
        "REPIC_IMAGES": str(live.images),
    }
    run = subprocess.run(
        ["node", "--test", str(out / "test" / "scenario.test.js")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "# pass 1" in run.stdout and "# fail 0" in run.stdout


def _differences(left: Path, right: Path) -> list[str]:
    """Files that differ, or exist on one side only, between two generated trees."""
    cmp = filecmp.dircmp(left, right, ignore=[".ruff_cache", "__pycache__"])
    found: list[str] = []

    def walk(node: filecmp.dircmp[str], prefix: str) -> None:
        found.extend(prefix + name for name in node.left_only + node.right_only)
        found.extend(
            prefix + name
            for name in node.common_files
            if (Path(node.left) / name).read_bytes() != (Path(node.right) / name).read_bytes()
        )
        for name, sub in node.subdirs.items():
            walk(sub, f"{prefix}{name}/")

    walk(cmp, "")
    return sorted(found)


def test_sdks_are_generated_from_the_current_app(tmp_path: Path) -> None:
    spec = tmp_path / "openapi.json"
    spec.write_text(openapi_document(), encoding="utf-8")
    generator = SDKGEN / "openapi-python-client"
    if not generator.exists():
        pytest.fail(f"{generator} is missing: run `make test` (it builds .venv-sdkgen)")
    py_out = tmp_path / "python"
    subprocess.run(
        [
            generator,
            "generate",
            "--path",
            spec,
            "--config",
            CLIENTS / "openapi-python-client.yaml",
            "--output-path",
            py_out,
            "--meta",
            "uv",
            "--fail-on-warning",
        ],
        env={**os.environ, "PATH": f"{SDKGEN}{os.pathsep}{os.environ['PATH']}"},
        check=True,
        capture_output=True,
        timeout=180,
    )
    ts_out = tmp_path / "typescript"
    subprocess.run(
        [node_tool("openapi-ts"), "--silent"],
        cwd=TS,
        env={**os.environ, "REPIC_TS_INPUT": str(spec), "REPIC_TS_OUT": str(ts_out)},
        check=True,
        capture_output=True,
        timeout=180,
    )
    stale = [f"python/{p}" for p in _differences(py_out, CLIENTS / "python")]
    stale += [f"typescript/src/{p}" for p in _differences(ts_out, TS / "src")]
    assert not stale, f"run `make openapi clients`; stale generated files: {stale}"
