"""Schemathesis against a live server: every operation, examples from the spec, random and
boundary data, and stateful sequences along the links it infers (POST /concepts -> GET
/concepts/{concept_id} -> DELETE ...). Checks: no 5xx, every status and content type documented.

Two passes so that the admin pass, which may revoke keys and delete users, runs after the user
pass instead of locking it out midway: user routes with a user's key, then `/admin/` with the
admin token. `python -m tests.helpers.fuzz --max-examples 1000` is the large run (`make fuzz`)."""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.helpers import images
from tests.helpers.live_server import BIN, LiveServer, live_server, prepare, server_env

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance"
SEED = 20261201


@dataclass
class FuzzResult:
    cases: int = 0
    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    server_errors: int = 0
    statuses: dict[str, int] = field(default_factory=dict)

    def add(self, report: dict[str, object]) -> None:
        cases = report["test_cases"]
        assert isinstance(cases, dict)
        self.cases += int(cases["generated"])
        for failure in report["failures"]:  # type: ignore[attr-defined]
            self.failures.append(json.dumps(failure))
        for error in report["errors"]:  # type: ignore[attr-defined]
            self.errors.append(json.dumps(error))


def seed_concepts(server: LiveServer, count: int = 3) -> None:
    """A few real concepts, so stateful sequences and the id routes reach stored data."""
    for i in range(count):
        resp = httpx.post(
            f"{server.url}/concepts",
            headers=server.auth,
            data={"name": f"seed{i}", "info": "seeded before fuzzing"},
            files=[("images", (f"{i}.jpg", images.pattern(100 + i), "image/jpeg"))],
            timeout=60,
        )
        resp.raise_for_status()


def _pass(
    server: LiveServer,
    token: str,
    scope: list[str],
    *,
    max_examples: int,
    workers: int,
    report: Path,
) -> dict[str, object]:
    command = [
        str(BIN / "st"),
        "run",
        f"{server.url}/openapi.json",
        "-H",
        f"Authorization: Bearer {token}",
        *scope,
        "--checks",
        CHECKS,
        "--seed",
        str(SEED),
        "--max-examples",
        str(max_examples),
        "--workers",
        str(workers),
        "--request-timeout",
        "60",
        "--report",
        "json",
        "--report-json-path",
        str(report),
        "--no-color",
    ]
    # Run in the report's directory: schemathesis keeps a cache folder in its working directory.
    done = subprocess.run(
        command, capture_output=True, text=True, check=False, timeout=3600, cwd=report.parent
    )
    if not report.exists():
        raise RuntimeError(f"schemathesis did not run: {done.stdout[-3000:]}{done.stderr}")
    loaded: dict[str, object] = json.loads(report.read_text())
    loaded["output"] = done.stdout[-6000:]
    return loaded


def fuzz(server: LiveServer, *, max_examples: int, workers: int = 2) -> FuzzResult:
    """Both passes against ``server``; the server's access log gives the status counts."""
    seed_concepts(server)
    result = FuzzResult()
    with tempfile.TemporaryDirectory() as tmp:
        for name, token, scope in (
            ("user", server.key, ["--exclude-path-regex", "^/admin"]),
            ("admin", server.admin_token, ["--include-path-regex", "^/admin"]),
        ):
            report = _pass(
                server,
                token,
                scope,
                max_examples=max_examples,
                workers=workers,
                report=Path(tmp) / f"{name}.json",
            )
            result.add(report)
            if report["failures"] or report["errors"]:
                result.errors.append(str(report["output"]))
    for line in server.log.read_text(errors="replace").splitlines():
        if line.startswith("{") and '"repic.access"' in line:
            status = str(json.loads(line).get("status"))
            result.statuses[status] = result.statuses.get(status, 0) + 1
    result.server_errors = sum(n for s, n in result.statuses.items() if s.startswith("5"))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-examples", type=int, default=1000, help="cases per operation")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    from model.tiny.clip import build_tiny_clip
    from model.tiny.qwen import build_tiny_qwen25vl

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        clip = build_tiny_clip(root / "clip")
        qwen = build_tiny_qwen25vl(root / "qwen")
        env = server_env(root, clip.config_path, clip.checkpoint_path, qwen)
        env.update(FUZZ_LIMITS)
        key = prepare(env)
        with live_server(env, key, root / "server.log") as server:
            result = fuzz(server, max_examples=args.max_examples, workers=args.workers)
    print(f"cases: {result.cases}")
    print(f"responses by status: {dict(sorted(result.statuses.items()))}")
    print(f"5xx responses: {result.server_errors}")
    print(f"schemathesis failures: {len(result.failures)}, errors: {len(result.errors)}")
    for text in result.errors:
        print(text)
    raise SystemExit(1 if result.failures or result.errors or result.server_errors else 0)


#: A fuzzer is one very busy user: the rate limit would answer most of its cases with 429.
FUZZ_LIMITS = {
    "REPIC_QUOTA__REQUESTS_PER_MINUTE": "100000000",
    "REPIC_QUOTA__REQUEST_BURST": "1000000",
}

if __name__ == "__main__":
    main()
