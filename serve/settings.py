"""Service settings, from the environment (prefix BINSIGHT_) or a .env file.

Every setting is declared once here; `.env.example` lists them with their
defaults, and `python -m serve.cli settings` prints this reference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULTS = Path(__file__).parent / "defaults"
"""Configuration files binsight ships inside its package, so that an install without the repository starts."""


def _override(key: str, meaning: str) -> str:
    return f"Override of the model card's verdict.quality.{key} ({meaning}); unset: the card's value, the one the evaluation measured."


class ServeSettings(BaseSettings):
    # env_ignore_empty: `BINSIGHT_QUALITY_MIN_CONTRAST=` leaves an override unset.
    model_config = SettingsConfigDict(env_prefix="BINSIGHT_", env_file=".env", extra="ignore", frozen=True, env_ignore_empty=True)

    host: str = Field("127.0.0.1", description="Interface the HTTP server listens on.")
    port: int = Field(8000, ge=1, le=65535, description="TCP port of the HTTP server.")
    model_dir: Path = Field(Path("models"), description="Folder holding model.onnx and model_card.json.")
    database_url: str = Field(
        "sqlite:///var/binsight.db",
        description="SQLAlchemy URL: sqlite:///path for the embedded default, postgresql+psycopg://... for PostgreSQL.",
    )
    auto_migrate: bool | None = Field(
        None,
        description=(
            "Apply database migrations at start-up (and before create-key, revoke-key, retention); unset: yes for SQLite "
            "(one process owns the file), no for other databases, where replicas starting together would race: run "
            "`binsight migrate` once per release, and the service refuses to start on an older schema."
        ),
    )
    image_dir: Path = Field(Path("var/images"), description="Folder where inspection images are stored.")
    # serve/privacy.py: what is done to a photo before it is stored; the verdict always sees the original.
    privacy_blur: bool = Field(
        True,
        description=(
            "Blur faces, people and licence plates found in a photo before it is stored (serve/privacy.py; README, Privacy before storage). Off, "
            "and with no mask file, photos are stored exactly as uploaded."
        ),
    )
    privacy_masks: Path | None = Field(
        None,
        description=(
            "YAML file of per-truck hopper polygons (relative 0-1 coordinates, a `default` entry for trucks not listed; "
            "format in serve/hopper_masks.py); outside them photos are blanked before storage. Unset: the whole frame is kept."
        ),
    )
    privacy_detection_side: int = Field(
        640, ge=64, description="Longer side, pixels, of the downscaled copy the privacy finders search (larger finds smaller plates, slower)."
    )
    max_upload_bytes: int = Field(15_000_000, gt=0, description="Largest accepted request body, bytes.")
    max_image_pixels: int = Field(40_000_000, gt=0, description="Largest accepted image, width x height (decompression bombs).")
    max_clock_skew_s: int = Field(600, ge=0, description="How far in the future a capture time may lie, seconds (truck clocks drift).")
    inference_max_side: int | None = Field(
        None, ge=64,
        description=(
            "Override of the model card's inference size (verdict.inference_max_side: images are downscaled so their "
            "longer side is at most this before inference, pixels); unset: the card's, the one the evaluation measured."
        ),
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
    review_qc_sample_rate: float = Field(
        0.02, ge=0, le=1,
        description="Share of clean inspections drawn at random into the review queue for quality control (0-1); flagged ones always wait.",
    )
    review_claim_minutes: float = Field(
        10.0, gt=0, description="Minutes a reviewer holds an opened inspection before another reviewer may take it."
    )
    session_hours: float = Field(12.0, gt=0, description="Hours a reviewer's or admin's login lasts.")
    login_max_failures: int = Field(5, ge=1, description="Consecutive failed logins after which an account is locked for a while.")
    login_lock_s: float = Field(60.0, gt=0, description="Seconds of the first lock; each further failure doubles it.")
    login_max_lock_s: float = Field(3600.0, gt=0, description="Longest lock after repeated failed logins, seconds.")
    secure_cookies: bool | None = Field(
        None,
        description=(
            "Mark login cookies Secure (sent over https only); unset: when the page was requested over https. Set true "
            "behind a TLS-terminating proxy that forwards plain http."
        ),
    )
    retention_days_clean: int = Field(30, ge=0, description="Days images of clean bins are kept before the retention command deletes them.")
    retention_days_rejected: int = Field(
        90, ge=0,
        description=(
            "Days images of rejected and unusable inspections (and confirmed findings that made no notice) are kept, from "
            "capture; long enough to `export-reviewed` them for training (serve/retention.py)."
        ),
    )
    retention_days_unreviewed: int = Field(
        180, ge=0,
        description=(
            "Days a photo nobody reviewed is kept at most, from capture (it then leaves the review queue; the record "
            "stays); 0: no cap, kept until reviewed (serve/retention.py)."
        ),
    )
    retention_interval_minutes: float = Field(
        60.0, ge=0, description="Minutes between the service's own retention runs (the first one interval after start-up); 0: off, run `binsight retention` instead."
    )
    notices_config: Path | None = Field(
        None,
        description=(
            "YAML of the notices to residents: escalation levels per fraction, window, sender, German names, the letter's template; "
            "unset: binsight's own example (serve/defaults/notices/escalation.yaml, a template to copy and adapt: its sender is made up)."
        ),
    )
    # Statistics, load grades and open data (serve/statistics.py, serve/load_grade.py, serve/open_data.py).
    local_timezone: str = Field(
        "Europe/Berlin",
        description="The city's time zone (IANA name): statistics count ISO weeks and load grades count days on its calendar, as collection runs.",
    )
    repeat_findings_min: int = Field(2, ge=1, description="Confirmed findings from which the dashboard lists a bin as a repeated finding.")
    repeat_findings_days: int = Field(365, ge=1, description="Window for repeated findings, days back from the end of the dashboard's date range.")
    load_grade_fraction: str = Field("biowaste", min_length=1, description="The waste fraction whose truck loads are graded against the biowaste ordinance.")
    load_limit_foreign_pct: float = Field(3.0, gt=0, le=100, description="Load grade: most foreign matter a load may hold, percent (BioAbfV since May 2025: 3).")
    load_limit_plastics_pct: float = Field(1.0, gt=0, le=100, description="Load grade: most plastics a load may hold, percent (BioAbfV since May 2025: 1).")
    materials_file: Path | None = Field(
        None,
        description=(
            "YAML mapping each detector class to its material; the load grade's plastics share counts the `plastic` ones; "
            "unset: binsight's own (serve/defaults/materials.yaml, both recipes' classes)."
        ),
    )
    open_data_min_bins: int = Field(
        10, ge=2, description="Open data: a district-week cell describing fewer distinct bins than this is suppressed (`export open-data --k` overrides)."
    )
    open_data_grace_days: int = Field(
        28, ge=0, description="Open data: days after a week's end before it is published, so late uploads and reviews no longer change it."
    )
    open_data_licence: Literal["dl-de/by-2-0", "dl-de/zero-2-0", "CC-BY-4.0", "CC0-1.0"] = Field(
        "dl-de/by-2-0", description="Licence named in the open-data metadata: dl-de/by-2-0, dl-de/zero-2-0, CC-BY-4.0 or CC0-1.0."
    )
    open_data_publisher: str | None = Field(None, description="Publisher named in the open-data metadata, e.g. the city's waste company; unset: none is named.")
    bin_link_max_distance_m: float = Field(
        75.0, gt=0,
        description=(
            "Metres the capture's GPS position may lie from the bin's registered location; farther, the inspection's link "
            "to the bin is uncertain (far_from_bin): shown to reviewers, never escalated."
        ),
    )
    metrics_token: SecretStr | None = Field(
        None,
        description=(
            "Bearer token the Prometheus scraper sends to /metrics (`authorization: {credentials: ...}` in its scrape "
            "config); unset: /metrics answers only requests from this host (loopback)."
        ),
    )
    # The Label Studio ML backend (serve/routers/labelstudio.py): Label Studio sends the user and key as Basic Auth.
    labelstudio_key: SecretStr | None = Field(
        None,
        description=(
            "Password of the Label Studio ML backend under /labelstudio (in Label Studio: Connect Model, Basic Authentication); "
            "unset: the backend is off and answers 404."
        ),
    )
    labelstudio_user: str = Field("labelstudio", min_length=1, description="User name of the Label Studio ML backend's Basic Authentication.")
    labelstudio_url: str | None = Field(
        None,
        description=(
            "Label Studio's address (e.g. http://labelstudio:8080), from which the ML backend fetches the task images Label Studio "
            "serves (/data/upload/..., /data/local-files/?d=..., cloud storage); unset: only http(s) image URLs are predicted."
        ),
    )
    labelstudio_fetch_private_urls: bool = Field(
        False,
        description=(
            "Let the Label Studio backend fetch task image URLs on private, loopback or link-local addresses (an image server "
            "inside the company network); off: only Label Studio's own address there, so tasks cannot probe the network."
        ),
    )
    labelstudio_token: SecretStr | None = Field(
        None,
        description=(
            "Label Studio API token for those downloads: a personal access token (Account & Settings; exchanged for access tokens), "
            "or a legacy token where the organisation allows them."
        ),
    )
    # The quality gate's thresholds come from the model card (verdict.quality.* in
    # configs/params.yaml, measured by the evaluation); these only override them,
    # e.g. for one city's cameras. serve/quality.py applies them.
    quality_min_brightness: float | None = Field(None, description=_override("min_brightness", "mean luminance 0-255 below which an image is too dark"))
    quality_max_brightness: float | None = Field(None, description=_override("max_brightness", "mean luminance 0-255 above which an image is overexposed"))
    quality_max_saturated: float | None = Field(None, description=_override("max_saturated", "share of blown-out pixels above which an image is overexposed"))
    quality_min_contrast: float | None = Field(None, description=_override("min_contrast", "luminance standard deviation below which the lens is covered"))
    quality_min_sharpness: float | None = Field(None, description=_override("min_sharpness", "Laplacian variance below which an image is blurred"))
    quality_fog_min_veil: float | None = Field(None, description=_override("fog_min_veil", "median dark channel 0-255 from which a veil of fog or steam is considered"))
    quality_fog_max_detail: float | None = Field(None, description=_override("fog_max_detail", "local contrast at or below which a veiled image is foggy"))
    quality_fog_max_sharpness: float | None = Field(None, description=_override("fog_max_sharpness", "Laplacian variance at or below which a veiled image is foggy"))

    @field_validator("local_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from serve.time_buckets import zone

        zone(value)  # one line naming the zone when the system does not know it
        return value

    @property
    def unreviewed_cap_days(self) -> int | None:
        """retention_days_unreviewed as serve/retention.py takes it: None for no cap (the setting's 0)."""
        return self.retention_days_unreviewed or None

    @property
    def notices_config_path(self) -> Path:
        return self.notices_config or DEFAULTS / "notices" / "escalation.yaml"

    @property
    def materials_path(self) -> Path:
        return self.materials_file or DEFAULTS / "materials.yaml"

    @property
    def migrates_itself(self) -> bool:
        """Whether this process applies migrations (BINSIGHT_AUTO_MIGRATE, by default only for SQLite)."""
        return self.database_url.startswith("sqlite") if self.auto_migrate is None else self.auto_migrate


def env_example() -> str:
    """The text of `.env.example`: every setting with its description and default."""
    lines = ["# binsight service settings (copy to .env or export them). Every key is declared in serve/settings.py."]
    for name, field in ServeSettings.model_fields.items():
        if field.default is None:  # commented out, so what unset means holds (the model card's value, ...)
            lines += ["", f"# {field.description}", f"# BINSIGHT_{name.upper()}="]
            continue
        default = str(field.default).lower() if isinstance(field.default, bool) else field.default
        lines += ["", f"# {field.description}", f"BINSIGHT_{name.upper()}={default}"]
    return "\n".join(lines) + "\n"
