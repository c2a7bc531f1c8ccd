"""app.core.metrics on a throwaway FastAPI app: route templates, status codes, stages, isolation."""

from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from prometheus_client import REGISTRY

from app.core.metrics import STAGES, VLM_ERROR_KINDS, Metrics, MetricsMiddleware
from app.services.timings import Timings


def _app(metrics: Metrics) -> FastAPI:
    app = FastAPI()
    concepts = APIRouter(prefix="/concepts", tags=["concepts"])

    @concepts.get("/{concept_id}")
    async def get_concept(concept_id: int) -> dict[str, int]:
        return {"id": concept_id}

    @concepts.get("/{concept_id}/boom")
    async def explode(concept_id: int) -> None:
        raise RuntimeError("boom")

    app.include_router(concepts)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def _client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


def _requests(metrics: Metrics, route: str, method: str, status: str) -> float | None:
    return metrics.registry.get_sample_value(
        "repic_http_requests_total", {"route": route, "method": method, "status": status}
    )


async def test_requests_are_counted_by_route_template_not_path() -> None:
    metrics = Metrics()
    async with _client(_app(metrics)) as client:
        for concept_id in (7, 8, 9):
            assert (await client.get(f"/concepts/{concept_id}")).status_code == 200
    assert _requests(metrics, "/concepts/{concept_id}", "GET", "200") == 3
    body, _ = metrics.render()
    assert b"/concepts/7" not in body
    latency_count = metrics.registry.get_sample_value(
        "repic_http_request_duration_seconds_count",
        {"route": "/concepts/{concept_id}", "method": "GET"},
    )
    assert latency_count == 3


async def test_unrouted_paths_share_one_label() -> None:
    metrics = Metrics()
    async with _client(_app(metrics)) as client:
        await client.get("/secret-probe/1")
        await client.get("/wp-admin.php")
    assert _requests(metrics, "unmatched", "GET", "404") == 2
    assert b"secret-probe" not in metrics.render()[0]


async def test_errors_and_wrong_methods_keep_their_status() -> None:
    metrics = Metrics()
    async with _client(_app(metrics)) as client:
        assert (await client.get("/concepts/1/boom")).status_code == 500
        assert (await client.delete("/concepts/1")).status_code == 405
        assert (await client.get("/concepts/abc")).status_code == 422
    assert _requests(metrics, "/concepts/{concept_id}/boom", "GET", "500") == 1
    assert _requests(metrics, "/concepts/{concept_id}", "DELETE", "405") == 1
    assert _requests(metrics, "/concepts/{concept_id}", "GET", "422") == 1


async def test_invented_methods_are_folded() -> None:
    metrics = Metrics()
    async with _client(_app(metrics)) as client:
        await client.request("BREW", "/concepts/1")
    assert _requests(metrics, "/concepts/{concept_id}", "OTHER", "405") == 1


def test_every_stage_and_error_kind_is_exported_from_the_start() -> None:
    body = Metrics().render()[0].decode()
    for stage in STAGES:
        assert f'repic_stage_seconds_count{{stage="{stage}"}} 0.0' in body
    for kind in VLM_ERROR_KINDS:
        assert f'repic_vlm_errors_total{{kind="{kind}"}} 0.0' in body
    assert set(VLM_ERROR_KINDS) == {"unavailable", "timeout", "bad_request", "error"}


def test_timings_stage_records_failed_blocks_too() -> None:
    metrics = Metrics()
    timings = Timings(metrics)
    with timings.stage("embed"):
        pass
    with pytest.raises(TimeoutError), timings.stage("vlm"):
        raise TimeoutError
    metrics.observe_stage("vlm", 2.0)
    sample = metrics.registry.get_sample_value
    assert sample("repic_stage_seconds_count", {"stage": "embed"}) == 1
    assert sample("repic_stage_seconds_count", {"stage": "vlm"}) == 2
    assert (sample("repic_stage_seconds_sum", {"stage": "vlm"}) or 0) >= 2.0
    assert sample("repic_stage_seconds_count", {"stage": "decode"}) == 0


def test_vlm_errors_and_index_size() -> None:
    metrics = Metrics()
    metrics.count_vlm_error("timeout")
    metrics.count_vlm_error("timeout")
    metrics.set_index_size(vectors=1200, loaded_users=3)
    metrics.set_index_size(vectors=1000, loaded_users=2)
    sample = metrics.registry.get_sample_value
    assert sample("repic_vlm_errors_total", {"kind": "timeout"}) == 2
    assert sample("repic_vlm_errors_total", {"kind": "unavailable"}) == 0
    assert sample("repic_index_vectors") == 1000
    assert sample("repic_index_loaded_users") == 2


def test_instances_do_not_share_state_or_touch_the_global_registry() -> None:
    first, second = Metrics(), Metrics()
    first.count_vlm_error("unavailable")
    assert second.registry.get_sample_value("repic_vlm_errors_total", {"kind": "unavailable"}) == 0
    assert REGISTRY.get_sample_value("repic_vlm_errors_total", {"kind": "unavailable"}) is None


def test_render_is_prometheus_text() -> None:
    body, content_type = Metrics().render()
    assert content_type.startswith("text/plain; version=")
    assert b"# TYPE repic_http_request_duration_seconds histogram" in body
    assert b"# TYPE repic_index_vectors gauge" in body
