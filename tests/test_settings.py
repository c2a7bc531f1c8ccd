"""Settings: prefix, nesting, and refusal of default secrets outside development."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.core.settings import Settings


def test_env_prefix_and_nesting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPIC_DATABASE_URL", "postgresql+psycopg://u:p@db/repic")
    monkeypatch.setenv("REPIC_VLM__BACKEND", "openai")
    monkeypatch.setenv("REPIC_UPLOAD__MAX_BYTES", "2048")
    monkeypatch.setenv("REPIC_CORS_ORIGINS", '["https://example.org"]')
    s = Settings()
    assert s.database_url.startswith("postgresql+psycopg://")
    assert s.vlm.backend == "openai" and s.upload.max_bytes == 2048
    assert s.cors_origins == ["https://example.org"]


def test_defaults_are_the_embedded_development_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("REPIC_ENV", "REPIC_DATABASE_URL", "REPIC_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.env == "development" and s.database_url.startswith("sqlite:///")
    assert s.embedder.model == "ViT-L-14-336" and s.vlm.max_pixels == 1024 * 28 * 28


def test_production_refuses_default_admin_token() -> None:
    with pytest.raises(ValidationError, match="REPIC_ADMIN_TOKEN"):
        Settings(env="production")  # type: ignore[arg-type]


def test_production_refuses_default_vllm_key() -> None:
    with pytest.raises(ValidationError, match="REPIC_VLM__API_KEY"):
        Settings(env="production", admin_token="x" * 32, vlm={"backend": "openai"})  # type: ignore[arg-type]


def test_production_with_real_secrets_starts() -> None:
    s = Settings(
        env="production", admin_token="x" * 32, vlm={"backend": "openai", "api_key": "k" * 20}
    )  # type: ignore[arg-type]
    assert s.env == "production"


def test_top_k_is_bounded() -> None:
    with pytest.raises(ValidationError, match="top_k"):
        Settings(retrieval={"top_k": 12})  # type: ignore[arg-type]
