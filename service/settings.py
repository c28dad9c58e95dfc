"""Service settings: constructor arguments, then ``FACEDET_*`` environment variables, then safe defaults.

Every field has a default, so ``Settings()`` works in a bare environment (importing the app never
fails for want of configuration). ``facedet serve`` passes its flags through environment
variables, so every uvicorn worker process sees the same settings.

The model is the one exception: ``model_path`` is a constructor argument only, and the model's
environment variable ``FACEDET_MODEL`` is read in one place, ``facedet.paths.resolve_model``
(shared with the command line and the Python API).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

MB = 1024 * 1024


def _default_concurrency() -> int:
    return max(1, min(4, os.cpu_count() or 1))


class _EnvWithoutModel(EnvSettingsSource):
    """``FACEDET_*`` variables for every field but ``model_path`` (see the module docstring)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        if field_name == "model_path":
            return None, field_name, False
        return super().get_field_value(field, field_name)


class Settings(BaseSettings):
    """Configuration of one service process (env prefix ``FACEDET_``, e.g. ``FACEDET_MAX_UPLOAD_BYTES``)."""

    model_config = SettingsConfigDict(env_prefix="FACEDET_", extra="ignore", frozen=True)

    model_path: Path | None = Field(
        default=None,
        description="Integer model file or model name (constructor only). None: facedet.paths.resolve_model() "
        "(FACEDET_MODEL, else the best shipped model).",
    )
    max_upload_bytes: int = Field(
        default=10 * MB, ge=1, description="Largest image upload in bytes; enforced while the body is read."
    )
    max_batch_files: int = Field(default=16, ge=1, le=256, description="Most images in one /v1/detect/batch call.")
    max_batch_bytes: int = Field(default=32 * MB, ge=1, description="Largest /v1/detect/batch request body in bytes.")
    max_pixels: int = Field(
        default=25_000_000,
        ge=1,
        description="Largest width*height accepted (decompression-bomb guard), read from the image header "
        "before the pixels are decoded.",
    )
    max_concurrency: int = Field(
        default_factory=_default_concurrency,
        ge=1,
        description="Detections running at once in worker threads (default: CPU count, at most 4).",
    )
    max_queue: int = Field(
        default=32, ge=0, description="Requests allowed to wait for a worker; beyond that the service answers 503."
    )
    default_min_score: float = Field(default=0.5, ge=0.0, le=1.0, description="min_score when the query omits it.")
    default_max_faces: int = Field(default=100, ge=1, le=1000, description="max_faces when the query omits it.")
    nms_iou: float = Field(default=0.4, gt=0.0, le=1.0, description="IoU threshold of non-maximum suppression.")
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed by CORS (empty: same-origin only, the safe default)."
    )
    log_level: str = Field(default="info", description="Logging level of the service loggers.")
    body_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="Seconds a request body may take to arrive in all (then 408). Bodies are read before a "
        "detection slot is taken, so slow clients never block detection.",
    )
    header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="Seconds a connection may take to send complete request headers before it is closed "
        "(facedet serve; also counts after a keep-alive response).",
    )
    keep_alive_s: int = Field(default=5, ge=1, description="Seconds an idle keep-alive connection stays open.")
    max_connections: int = Field(
        default=128,
        ge=1,
        description="Most open connections and tasks per worker process (uvicorn limit_concurrency); beyond "
        "it uvicorn answers 503 at once.",
    )
    pixel_budget: int = Field(
        default=50_000_000,
        ge=1,
        description="Most decoded pixels held at once by the detections of one process (each image counts "
        "width*height from its header); bounds peak memory to about 3-4 bytes per pixel of this budget. "
        "Must be at least max_pixels.",
    )
    malloc_tuning: bool = Field(
        default=True,
        description="On glibc, cap malloc arenas at 2 and fix the mmap (1 MiB) and trim (8 MiB) thresholds at "
        "start-up (service.allocator): with glibc's defaults RSS grew without bound under load.",
    )
    metrics_dir: Path | None = Field(
        default=None,
        description="Directory through which the workers of one service add up their /metrics figures "
        "(service.metrics); facedet serve --workers N sets it to a private temporary directory. None: "
        "this process's figures only.",
    )
    docs_enabled: bool = Field(
        default=True, description="Serve /docs, /redoc and /openapi.json (turn off in production if unwanted)."
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Constructor arguments, then the environment (without the model: ``FACEDET_MODEL`` is
        resolved by ``facedet.paths``)."""
        return init_settings, _EnvWithoutModel(settings_cls)
