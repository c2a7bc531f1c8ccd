"""The model lifecycle every model shares: states, one load at a time, failures remembered."""

from __future__ import annotations

import asyncio
import threading

import pytest

from model.lifecycle import ModelLifecycle, ModelState, ModelUnavailable


class Weights:
    """A stand-in for loaded weights: the lifecycle's own logic is what is tested here."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.released = False


class Loader:
    """Counts loads; fails with ``error`` while it is set; may wait for ``gate`` first."""

    def __init__(self) -> None:
        self.calls = 0
        self.error: Exception | None = None
        self.gate: threading.Event | None = None
        self.started = threading.Event()

    def __call__(self) -> Weights:
        self.calls += 1
        self.started.set()
        if self.gate is not None:
            assert self.gate.wait(10)
        if self.error is not None:
            raise self.error
        return Weights(self.calls)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def lifecycle(
    loader: Loader, clock: Clock | None = None, retry_after_s: float = 60.0
) -> ModelLifecycle[Weights]:
    def release(weights: Weights) -> None:
        weights.released = True

    return ModelLifecycle(
        "tiny",
        loader,
        lambda w: f"weights #{w.n}",
        release=release,
        retry_after_s=retry_after_s,
        clock=clock or Clock(),
    )


def test_unloaded_until_loaded_then_ready_with_its_detail() -> None:
    loader = Loader()
    model = lifecycle(loader)
    before = model.readiness()
    assert (before.state, before.ready) == (ModelState.UNLOADED, False)
    assert before.detail == "tiny not loaded (loads on first use)"
    weights = model.load()
    assert model.load() is weights and loader.calls == 1
    after = model.readiness()
    assert (after.state, after.ready, after.detail) == (ModelState.READY, True, "weights #1")


def test_loading_is_visible_and_concurrent_callers_share_one_load() -> None:
    loader = Loader()
    loader.gate = threading.Event()
    model = lifecycle(loader)
    got: list[Weights] = []
    threads = [threading.Thread(target=lambda: got.append(model.load())) for _ in range(4)]
    for t in threads:
        t.start()
    assert loader.started.wait(10)
    loading = model.readiness()
    assert (loading.state, loading.detail) == (ModelState.LOADING, "loading tiny")
    loader.gate.set()
    for t in threads:
        t.join(10)
    assert loader.calls == 1
    assert len(got) == 4 and all(w is got[0] for w in got)


def test_a_failure_is_remembered_until_the_interval_has_passed() -> None:
    loader, clock = Loader(), Clock()
    loader.error = ModelUnavailable("no weights; set MODEL_PATH")
    model = lifecycle(loader, clock, retry_after_s=60)
    with pytest.raises(ModelUnavailable, match="MODEL_PATH"):
        model.load()
    failed = model.readiness()
    assert (failed.state, failed.ready) == (ModelState.FAILED, False)
    assert failed.detail == "failed: no weights; set MODEL_PATH"
    loader.error = None  # fixed, but inside the interval: the remembered error, no new attempt
    clock.now += 59
    with pytest.raises(ModelUnavailable):
        model.load()
    assert loader.calls == 1
    clock.now += 2
    assert model.load().n == 2
    assert model.readiness().state is ModelState.READY


def test_without_an_interval_every_call_tries_again() -> None:
    loader = Loader()
    loader.error = ModelUnavailable("down")
    model = lifecycle(loader, retry_after_s=0)
    for _ in range(3):
        with pytest.raises(ModelUnavailable):
            model.load()
    assert loader.calls == 3


def test_an_unexpected_error_is_raised_but_not_remembered() -> None:
    loader = Loader()
    loader.error = KeyError("bug")
    model = lifecycle(loader)
    with pytest.raises(KeyError):
        model.load()
    assert model.state is ModelState.UNLOADED
    loader.error = None
    assert model.load().n == 2


def test_unload_releases_and_the_next_use_loads_again() -> None:
    loader = Loader()
    model = lifecycle(loader)
    first = model.load()
    model.unload()
    assert first.released
    assert model.readiness().state is ModelState.UNLOADED
    assert model.resources is None
    assert model.load().n == 2


def test_unload_forgets_a_failure() -> None:
    loader = Loader()
    loader.error = ModelUnavailable("down")
    model = lifecycle(loader)
    with pytest.raises(ModelUnavailable):
        model.load()
    loader.error = None
    model.unload()
    assert model.state is ModelState.UNLOADED
    assert model.load().n == 2


async def test_aload_shows_loading_at_once_and_keeps_the_loop_free() -> None:
    loader = Loader()
    loader.gate = threading.Event()
    model = lifecycle(loader)
    task = asyncio.create_task(model.aload())
    await asyncio.sleep(0)
    assert model.state is ModelState.LOADING
    await asyncio.to_thread(loader.started.wait, 10)
    loader.gate.set()  # the loop was free to run this while the load waited
    weights = await task
    assert weights.n == 1 and model.state is ModelState.READY


def test_retry_interval_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="retry_after_s"):
        lifecycle(Loader(), retry_after_s=-1)
