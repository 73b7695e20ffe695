"""Helpers shared by the service tests."""

from __future__ import annotations

import io
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image


def jpeg_bytes(rgb: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def scene_jpeg(dataset: Path, index: int = 0) -> bytes:
    return sorted((dataset / "images").iterdir())[index].read_bytes()


def migrated(database_url: str) -> str:
    """The URL of a database brought to the newest schema, as `binsight migrate` leaves it before a release."""
    from serve.db import make_engine
    from serve.migrate import upgrade

    engine = make_engine(database_url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    return database_url


def form(capture_id: str = "cap-1", **overrides) -> dict:
    fields = {
        "bin_id": "E200A1B2C3D4",
        "truck_id": "HAM-EB-101",
        "fraction": "biowaste",
        "captured_at": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        "capture_id": capture_id,
        "latitude": "51.6739",
        "longitude": "7.8159",
    }
    fields.update(overrides)
    return {k: v for k, v in fields.items() if v is not None}


def scrape_metrics(client):
    """GET /metrics as the operator's scraper does: with the bearer token (set on the running app here)."""
    from pydantic import SecretStr

    client.app.state.settings = client.app.state.settings.model_copy(update={"metrics_token": SecretStr("scrape-me")})
    return client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
