"""Service settings, from the environment (prefix BINSIGHT_) or a .env file.

Every setting is declared once here; `.env.example` lists them with their
defaults, and `python -m serve.cli settings` prints this reference.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BINSIGHT_", env_file=".env", extra="ignore", frozen=True)

    host: str = Field("127.0.0.1", description="Interface the HTTP server listens on.")
    port: int = Field(8000, ge=1, le=65535, description="TCP port of the HTTP server.")
    model_dir: Path = Field(Path("models"), description="Folder holding model.onnx and model_card.json.")
    database_url: str = Field(
        "sqlite:///var/binsight.db",
        description="SQLAlchemy URL: sqlite:///path for the embedded default, postgresql+psycopg://... for PostgreSQL.",
    )
    image_dir: Path = Field(Path("var/images"), description="Folder where inspection images are stored.")
    max_upload_bytes: int = Field(15_000_000, gt=0, description="Largest accepted request body, bytes.")
    max_image_pixels: int = Field(40_000_000, gt=0, description="Largest accepted image, width x height (decompression bombs).")
    max_clock_skew_s: int = Field(600, ge=0, description="How far in the future a capture time may lie, seconds (truck clocks drift).")
    inference_max_side: int = Field(
        640, ge=64, description="Images are downscaled so their longer side is at most this before inference, pixels."
    )
    inference_threads: int = Field(
        0, ge=0, description="onnxruntime threads of the session a lone request uses; 0 lets onnxruntime choose (all cores)."
    )
    inference_workers: int = Field(
        0, ge=0, description="Single-threaded sessions that serve concurrent requests side by side; 0 means one per core."
    )
    access_log: bool = Field(
        False, description="Log a line per request (uvicorn's access log). Off by default: /metrics counts requests by route and status."
    )
    auth_cache_s: float = Field(
        10.0, ge=0, description="Seconds a verified API key is trusted without a database lookup; a revoked key stops working within this time."
    )
    min_detection_score: float = Field(
        0.3, ge=0, le=1, description="Detections below this score are not reported or stored (the verdict uses the model card's threshold)."
    )
    retention_days_clean: int = Field(30, ge=0, description="Days images of clean bins are kept before the retention command deletes them.")
    quality_min_brightness: float = Field(35.0, description="Mean luminance (0-255) below which an image is too dark.")
    quality_max_brightness: float = Field(215.0, description="Mean luminance (0-255) above which an image is overexposed.")
    quality_max_saturated: float = Field(0.35, description="Share of blown-out pixels (>= 250) above which an image is overexposed.")
    quality_min_sharpness: float = Field(
        10.0, description="Variance of the Laplacian (160-319 px grey copy) below which an image is too blurred; sharp bin photos give hundreds."
    )
    quality_min_contrast: float = Field(8.0, description="Luminance standard deviation below which the lens is covered.")


def env_example() -> str:
    """The text of `.env.example`: every setting with its description and default."""
    lines = ["# binsight service settings (copy to .env or export them). Every key is declared in serve/settings.py."]
    for name, field in ServeSettings.model_fields.items():
        default = str(field.default).lower() if isinstance(field.default, bool) else field.default
        lines += ["", f"# {field.description}", f"BINSIGHT_{name.upper()}={default}"]
    return "\n".join(lines) + "\n"
