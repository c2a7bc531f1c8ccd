"""Service settings: one prefix (``REPIC_``), nested groups joined with ``__``.

Every field has a description; the README configuration table is generated from this class
(``repic dev settings-table``) and a test fails when the README is stale.
"""

from __future__ import annotations

from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_ADMIN_TOKEN = "change-me-admin-token"  # noqa: S105 - the refused default
DEFAULT_VLM_API_KEY = "change-me-vllm-key"
QWEN_PIXELS_PER_TOKEN = 28 * 28


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"
    TEST = "test"


class UploadSettings(BaseModel):
    max_bytes: int = Field(
        10 * 1024 * 1024, ge=1024, description="Largest accepted image upload, compressed bytes."
    )
    max_pixels: int = Field(
        40_000_000, ge=1024, description="Largest decoded image (width x height); more is a 413."
    )
    store_max_side: int = Field(
        2048,
        ge=64,
        description="Stored reference images are downscaled so their longer side is at most this.",
    )
    max_images_per_concept: int = Field(10, ge=1, le=100, description="Images per concept.")
    thumbnail_side: int = Field(
        256, ge=32, le=1024, description="Longer side of the thumbnail made for each photo."
    )
    max_request_pixels: int = Field(
        120_000_000,
        ge=1024,
        description="Decoded pixels of all images of one request together (413 beyond).",
    )


class QuotaSettings(BaseModel):
    """Per-user limits: what one user may store and how hard one user may drive the service."""

    concepts: int = Field(1000, ge=1, description="Concepts per user (409 `quota-exceeded`).")
    photos: int = Field(10_000, ge=1, description="Reference photos per user, all concepts.")
    stored_bytes: int = Field(
        2 * 1024**3, ge=1024, description="Stored (re-encoded) photo bytes per user."
    )
    api_keys: int = Field(10, ge=1, description="Active API keys per user.")
    requests_per_minute: int = Field(
        600, ge=1, description="Sustained requests per user and minute (429 with Retry-After)."
    )
    request_burst: int = Field(60, ge=1, description="Requests a user may send at once.")
    concurrent_captions: int = Field(
        4, ge=1, description="Captions of one user in flight at once (429 beyond)."
    )


class EmbedderSettings(BaseModel):
    model: str = Field(
        "ViT-L-14-336",
        description="open_clip architecture name, or a path to an open_clip model config JSON.",
    )
    pretrained: str = Field(
        "openai",
        description="open_clip pretrained tag (downloads once) or a local checkpoint file/dir.",
    )
    device: str = Field("auto", description="`auto` (CUDA when available), `cpu` or `cuda`.")
    batch_size: int = Field(32, ge=1, le=512, description="Largest forward-pass batch.")


class RegionSettings(BaseModel):
    grids: list[int] = Field(
        default_factory=lambda: [2],
        description="Grid crops added to the whole image: 2 means a 2x2 grid. Empty for none.",
    )
    center: bool = Field(True, description="Add a centre crop (half of each side).")
    detector: Literal["none", "owlv2"] = Field(
        "none", description="Optional open-vocabulary detector proposing extra crops."
    )
    detector_model: str = Field(
        "google/owlv2-base-patch16-ensemble", description="OWLv2 hub id or local directory."
    )
    detector_threshold: float = Field(0.1, ge=0.0, le=1.0, description="OWLv2 box score floor.")


class RetrievalSettings(BaseModel):
    top_k: int = Field(2, ge=1, le=8, description="Concepts retrieved per caption by default.")
    min_score: float = Field(
        0.6,
        ge=-1.0,
        le=1.0,
        description="Cosine-similarity floor below which a retrieved concept is dropped.",
    )


class IndexSettings(BaseModel):
    cache_max_bytes: int = Field(
        1 << 30,
        ge=0,
        description="Memory cap of the loaded per-user indexes, bytes; least recently used "
        "users are dropped first (and reloaded from their files when needed).",
    )
    compressed_min_vectors: int = Field(
        20_000,
        ge=1,
        description="From this many vectors a user's search scans 8-bit codes first and "
        "re-scores candidates in fp32 (same results as exact search, less memory traffic).",
    )


class VLMSettings(BaseModel):
    backend: Literal["transformers", "openai"] = Field(
        "transformers", description="`transformers` (in-process) or `openai` (a vLLM server)."
    )
    model: str = Field(
        "Yeongtak/RePIC_Qwen2.5VL_7B",
        description="Hub id or local dir (transformers), or the served model name (openai).",
    )
    adapter: str | None = Field(
        None,
        description="LoRA adapter (folder or Hub id) the transformers backend applies on top of "
        "`model`. With vLLM, serve it with `--enable-lora --lora-modules NAME=PATH` and set "
        "`model` to NAME instead.",
    )
    base_url: str = Field(
        "http://127.0.0.1:8001/v1", description="OpenAI-compatible base URL of the vLLM server."
    )
    api_key: SecretStr = Field(
        SecretStr(DEFAULT_VLM_API_KEY), description="Bearer key of the vLLM server."
    )
    max_tokens: int = Field(1024, ge=1, le=1024, description="Default new-token limit.")
    repetition_penalty: float = Field(1.05, ge=0.5, le=2.0, description="As in the paper.")
    max_pixels: int = Field(
        1024 * QWEN_PIXELS_PER_TOKEN,
        ge=QWEN_PIXELS_PER_TOKEN * 4,
        description="Pixel budget of the query image sent to the VLM (1024 visual tokens).",
    )
    demo_max_pixels: int = Field(
        1024 * QWEN_PIXELS_PER_TOKEN,
        ge=QWEN_PIXELS_PER_TOKEN * 4,
        description="Pixel budget of each demonstration image.",
    )
    timeout_s: float = Field(120.0, gt=0, description="Per-request timeout to the VLM.")
    max_concurrency: int = Field(16, ge=1, le=1024, description="Requests in flight to the VLM.")
    public_name: str | None = Field(
        None,
        max_length=200,
        description="Model name shown in caption responses; default: `model`, or its last path "
        "component when it is a local path.",
    )
    connect_retries: int = Field(2, ge=0, le=10, description="Retries on connection errors only.")

    @model_validator(mode="after")
    def _adapter_needs_the_transformers_backend(self) -> VLMSettings:
        if self.adapter is not None and self.backend != "transformers":
            raise ValueError(
                "REPIC_VLM__ADAPTER applies to the transformers backend only; with vLLM, start "
                "the server with --enable-lora --lora-modules NAME=PATH and set "
                "REPIC_VLM__MODEL=NAME."
            )
        return self


class JobSettings(BaseModel):
    queue: Literal["auto", "embedded", "procrastinate"] = Field(
        "auto",
        description="How workers get jobs: `procrastinate` (a task queue in PostgreSQL; the "
        "default there), `embedded` (workers poll the job tables; the default on SQLite), or "
        "`auto`.",
    )
    run_in_api: bool = Field(
        True,
        description="Run caption jobs inside the API process (the embedded default); set false "
        "when `repic worker` processes run them.",
    )
    concurrency: int = Field(
        8, ge=1, le=256, description="Photos a worker captions at once (VLM requests in flight)."
    )
    max_photos: int = Field(500, ge=1, le=10_000, description="Photos in one job.")
    max_active_per_user: int = Field(
        4, ge=1, le=1000, description="Unfinished jobs one user may have at a time."
    )
    lease_s: float = Field(
        60.0,
        gt=0,
        description="How long a claimed photo stays a worker's without a renewal; a killed "
        "worker's photos (and, with procrastinate, its jobs) are taken again after it.",
    )
    poll_s: float = Field(1.0, gt=0, le=60, description="Idle worker's wait between looks.")


class HistorySettings(BaseModel):
    retention_days: float = Field(
        30.0,
        gt=0,
        description="Kept captions (for users who opted in) are deleted after this many days, "
        "by the blob sweep (`repic gc` or REPIC_STORAGE__GC_INTERVAL_S).",
    )


class StorageSettings(BaseModel):
    backend: Literal["local", "s3"] = Field(
        "local",
        description="Where reference photos live: `local` (REPIC_DATA_DIR/blobs) or `s3` "
        "(any S3-compatible bucket).",
    )
    s3_bucket: str = Field("", description="Bucket of the `s3` backend (must exist).")
    s3_prefix: str = Field("", description="Key prefix inside the bucket, e.g. `repic/`.")
    s3_endpoint_url: str | None = Field(
        None,
        description="Endpoint of an S3-compatible store (MinIO, R2, GCS); empty for AWS S3.",
    )
    s3_region: str | None = Field(None, description="Region; empty for the SDK's default.")
    s3_access_key_id: SecretStr | None = Field(
        None, description="Access key; empty to use the SDK's credential chain (IAM roles)."
    )
    s3_secret_access_key: SecretStr | None = Field(None, description="Secret key.")
    s3_addressing_style: Literal["auto", "path", "virtual"] = Field(
        "auto", description="`path` for MinIO and most self-hosted stores."
    )
    s3_timeout_s: float = Field(
        5.0, gt=0, description="Connect and read timeout per object request."
    )
    s3_max_attempts: int = Field(
        3, ge=1, le=10, description="Attempts per request (standard retry mode) before a 503."
    )
    gc_grace_s: float = Field(
        3600.0,
        ge=0,
        description="A blob without references is deleted only after this many seconds "
        "(in-flight reads finish first); orphans and temporaries older than this go too.",
    )
    gc_interval_s: float = Field(
        0.0,
        ge=0,
        description="Run the blob sweep in the app every this many seconds; 0 leaves it to "
        "`repic gc` (a cron job). Safe on any number of replicas at once.",
    )

    @model_validator(mode="after")
    def _s3_needs_a_bucket(self) -> StorageSettings:
        if self.backend == "s3" and not self.s3_bucket:
            raise ValueError("REPIC_STORAGE__BACKEND=s3 needs REPIC_STORAGE__S3_BUCKET")
        return self


class Settings(BaseSettings):
    """Everything the service reads from the environment (or `.env`)."""

    model_config = SettingsConfigDict(
        env_prefix="REPIC_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    env: Environment = Field(
        Environment.DEVELOPMENT, description="`development`, `test` or `production`."
    )
    database_url: str = Field(
        "sqlite:///./var/repic.db",
        description="SQLAlchemy URL: SQLite file, or `postgresql+psycopg://user:pw@host/db`.",
    )
    data_dir: Path = Field(Path("./var"), description="Image blobs and FAISS index files.")
    admin_token: SecretStr = Field(
        SecretStr(DEFAULT_ADMIN_TOKEN), description="Bearer token of the `/admin/` API."
    )
    cors_origins: list[str] = Field(
        default_factory=list, description='Allowed CORS origins, JSON list: `["https://a.b"]`.'
    )
    workers: int = Field(4, ge=1, le=64, description="Threads for decode, embed and index work.")
    preload_models: bool = Field(
        True, description="Load the embedder and VLM in the background at start-up."
    )
    log_level: str = Field("INFO", description="Root log level (`DEBUG`, `INFO`, `WARNING`).")
    log_format: Literal["json", "text", "inherit"] = Field(
        "json",
        description="One JSON object per line, plain text, or `inherit` (leave logging alone).",
    )
    metrics_token: SecretStr | None = Field(
        None, description="When set, `/metrics` needs `Authorization: Bearer <token>`."
    )
    min_free_disk_bytes: int = Field(
        512 * 1024**2,
        ge=0,
        description="Free space kept on REPIC_DATA_DIR's disk: below it uploads answer 503 "
        "(deletes still work) and `/readyz` is not ready.",
    )
    upload: UploadSettings = Field(default_factory=UploadSettings)
    quota: QuotaSettings = Field(default_factory=QuotaSettings)
    embedder: EmbedderSettings = Field(default_factory=EmbedderSettings)
    regions: RegionSettings = Field(default_factory=RegionSettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    index: IndexSettings = Field(default_factory=IndexSettings)
    vlm: VLMSettings = Field(default_factory=VLMSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    jobs: JobSettings = Field(default_factory=JobSettings)
    history: HistorySettings = Field(default_factory=HistorySettings)

    @model_validator(mode="after")
    def _procrastinate_needs_postgresql(self) -> Settings:
        if self.jobs.queue == "procrastinate" and not self.uses_postgresql:
            raise ValueError(
                "REPIC_JOBS__QUEUE=procrastinate needs PostgreSQL (REPIC_DATABASE_URL="
                "postgresql+psycopg://...); on SQLite use `embedded` or `auto`."
            )
        return self

    @property
    def uses_postgresql(self) -> bool:
        return self.database_url.startswith("postgresql")

    @property
    def job_queue(self) -> Literal["embedded", "procrastinate"]:
        """The queue in use: `auto` means procrastinate on PostgreSQL, embedded on SQLite."""
        if self.jobs.queue == "auto":
            return "procrastinate" if self.uses_postgresql else "embedded"
        return self.jobs.queue

    @model_validator(mode="after")
    def _refuse_default_secrets(self) -> Settings:
        if self.env is Environment.DEVELOPMENT:
            return self
        if self.admin_token.get_secret_value() == DEFAULT_ADMIN_TOKEN:
            raise ValueError(
                "REPIC_ADMIN_TOKEN is still the default; set a long random value "
                "(e.g. `openssl rand -hex 32`) or use REPIC_ENV=development."
            )
        if (
            self.vlm.backend == "openai"
            and self.vlm.api_key.get_secret_value() == DEFAULT_VLM_API_KEY
        ):
            raise ValueError(
                "REPIC_VLM__API_KEY is still the default; set the key your vLLM server was "
                "started with (--api-key) or use REPIC_ENV=development."
            )
        return self

    @cached_property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @cached_property
    def index_dir(self) -> Path:
        return self.data_dir / "index"
