"""Configuration, from the environment, in one place. The same names appear in README.md and
docker-compose.yml. A leaf: it imports nothing of the project, and only the entry points (the CLI, the
processes it starts) read the environment (`settings()`); every other part is given its settings."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Regenerating a variation overwrites its keys, so an image is not immutable: caches keep it a few
# minutes, then revalidate with its ETag (a 304 costs no body).
CACHE_CONTROL = "public, max-age=300"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)

    # Kafka. A consumer unheard of for the session timeout is taken for dead and its partitions move on.
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    # at_least_once: every consumer drops what it has seen by id. exactly_once: the workers' Faust app
    # writes each input's outputs and offset in one Kafka transaction (measured: see README, Faults).
    processing_guarantee: Literal["at_least_once", "exactly_once"] = "at_least_once"
    kafka_session_timeout_s: float = 10.0
    kafka_heartbeat_interval_s: float = 1.0
    topic_partitions: int = Field(default=4, ge=1, le=1024)
    topic_replication: int = Field(default=1, ge=1)

    database_url: str = "postgresql://postgres@127.0.0.1:5432/imagegen"

    # Images: files under STORAGE_PATH, or objects in an S3 bucket (storage/).
    storage_backend: Literal["filesystem", "s3"] = "filesystem"
    storage_path: Path = Path("data/images")
    s3_endpoint_url: str | None = None  # None: AWS S3 itself
    # Where browsers reach the bucket, for presigned URLs (a signature covers the host); default: the above.
    s3_public_endpoint_url: str | None = None
    s3_bucket: str = ""
    s3_region: str = "us-east-1"
    # None: botocore's own chain (AWS_* variables, ~/.aws, an instance role).
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_prefix: str = ""  # keys live under this prefix in the bucket
    # How the api serves an image stored in S3: streamed through it (Range, ETag and conditional
    # requests answered by S3), or a 307 to a presigned URL valid this long.
    image_serving: Literal["stream", "redirect"] = "stream"
    image_redirect_expires_s: int = Field(default=300, ge=1, le=7 * 24 * 3600)
    # Sent with every image and stored on S3 objects. Not `immutable`: a regenerate overwrites a key.
    image_cache_control: str = CACHE_CONTROL
    # Sent with a variant set's stable URLs (/sets/{set}/{image}): short, as a new winner changes them.
    set_cache_control: str = "public, max-age=60"
    public_base_url: str = "http://127.0.0.1:8015"

    # Logs: lines for people (text) or one JSON object per line for a log pipeline; records about a
    # job carry its variation_id, variation, family and job_id either way (streams/logs.py).
    log_format: Literal["text", "json"] = "text"
    log_level: str = "INFO"
    # A worker told to stop (SIGTERM, SIGINT) takes no new job and lets the one in flight finish for
    # this long; then it stops that one at its next step, uncommitted, for another worker to draw.
    shutdown_grace_s: float = Field(default=30.0, ge=0.0, le=3600.0)

    api_host: str = "127.0.0.1"
    api_port: int = 8015
    # Access (api/access.py). Keys as `name:scope:sha256hex` entries (scope read, submit or admin; made
    # by `imagegen keys new`), comma separated here or one a line in API_KEYS_FILE; none: all open.
    api_keys: str = ""
    api_keys_file: Path | None = None
    # Signs the gallery's session cookies (api/session.py); unset, each api process draws its own.
    session_secret: SecretStr | None = None
    session_ttl_s: int = Field(default=8 * 3600, ge=60, le=30 * 24 * 3600)
    image_access: Literal["public", "read"] = "public"  # image files: open to all (pages embed them), or a read key
    # Per key, per api process ("60/minute", "10/second"; empty: no limit); submit and admin calls share one.
    rate_limit_submit: str = "60/minute"
    rate_limit_read: str = "600/minute"
    max_body_bytes: int = Field(default=64 * 1024, ge=1)

    # Inference. Built-in tiny weights are cached here (built offline on first use).
    model_cache_dir: Path = Path(".cache/imagegen/models")
    default_model: str = "tiny"
    torch_threads: int = Field(default=0, ge=0)  # 0: torch's default
    # GPU speed levers for real models (inference/speed.py), e.g. "bf16,channels_last,fused_qkv,compile"
    speed_levers: str = ""
    # Models sharing a device stay within this many GB (least recently used unloaded first);
    # 0: 90 % of the GPU's memory, no limit on a CPU.
    model_memory_budget_gb: float = Field(default=0.0, ge=0.0)
    # Derivatives' encoding, unless the family table gives a derivative its own quality.
    webp_quality: int = Field(default=85, ge=1, le=100)
    webp_effort: int = Field(default=2, ge=0, le=6)  # libwebp's method: 0 fast .. 6 small (inference/cutting.py)
    avif_quality: int = Field(default=55, ge=1, le=100)
    jpeg_quality: int = Field(default=85, ge=1, le=100)
    families_file: Path | None = None

    # Which families a worker serves (comma separated; empty: all).
    worker_families: str = ""
    # Waiting jobs of one family that can share a pipeline call are drawn together: at most this
    # many, gathered for at most this long.
    batch_size: int = Field(default=4, ge=1, le=64)
    batch_window_s: float = Field(default=0.05, ge=0.0, le=10.0)
    # A drawing still going after this many seconds stops at its next step and fails, retryably
    # (DeadlineExceeded): a stuck or starved device never leaves a family "generating" forever.
    generation_deadline_s: float = Field(default=900.0, gt=0.0, le=86_400.0)
    # Workers announce themselves this often; one unseen for three intervals is taken for dead.
    heartbeat_interval_s: float = Field(default=5.0, gt=0, le=300)
    # A preview of the picture forming every this many denoising steps (at most twice a second), on
    # imagegen.progress for the live views (inference/preview.py); 0: none.
    preview_every_steps: int = Field(default=4, ge=0, le=150)
    # daily windows when normal jobs wait and DX jobs still run, e.g. "09:00-17:30,20:00-22:00" (streams/peak.py)
    peak_hours: str = ""
    peak_timezone: str = "UTC"
    # Brand policy (streams/brand.py): a prompt with one of these terms (comma separated, whole words,
    # any case) is rejected; this negative prompt is added to every job's, for every model.
    blocked_terms: str = Field(default="", max_length=20_000)
    brand_negative_prompt: str = Field(default="", max_length=1000)
    # Webhooks (webhooks/dispatcher.py): a failed delivery is tried again after BACKOFF_S, then twice,
    # four times… as long (at most BACKOFF_MAX_S, plus up to 25 % jitter), MAX_ATTEMPTS times in all.
    webhook_max_attempts: int = Field(default=15, ge=1, le=100)
    webhook_backoff_s: float = Field(default=1.0, gt=0, le=3600)
    webhook_backoff_max_s: float = Field(default=3600.0, gt=0)
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=300)  # per attempt, connect to last byte

    @model_validator(mode="after")
    def _s3_has_a_bucket(self) -> Settings:
        if self.storage_backend == "s3" and not self.s3_bucket:
            raise ValueError("S3_BUCKET is required when STORAGE_BACKEND=s3")
        return self


@cache
def settings() -> Settings:
    return Settings()
