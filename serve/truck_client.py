"""The truck's side: send captures, keep what could not be delivered, deliver each exactly once.

    python -m serve.truck_client send photo.jpg --bin-id E200... --fraction biowaste
    python -m serve.truck_client drain          # retry everything queued, with backoff
    python -m serve.truck_client status

Every capture is written to a local SQLite queue (fsynced) before the first
attempt, so a crash or a dead zone loses nothing. Its capture id is fixed when
it is queued; the service returns the existing inspection when the same
(truck id, capture id) arrives again, so a retry after a lost response never
creates a second inspection. Settings come from the environment:
BINSIGHT_SERVICE_URL, BINSIGHT_API_KEY, BINSIGHT_TRUCK_ID, BINSIGHT_QUEUE.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import httpx

TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}
# A key problem is the truck's configuration, not the capture: keep it queued.
KEEP_QUEUED_STATUS = TRANSIENT_STATUS | {401, 403}


@dataclass
class Capture:
    image: bytes
    bin_id: str
    truck_id: str
    fraction: str
    captured_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    latitude: float | None = None
    longitude: float | None = None
    capture_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    content_type: str = "image/jpeg"

    def form(self) -> dict[str, str]:
        fields = {
            "bin_id": self.bin_id,
            "truck_id": self.truck_id,
            "fraction": self.fraction,
            "captured_at": self.captured_at.isoformat(),
            "capture_id": self.capture_id,
        }
        if self.latitude is not None and self.longitude is not None:
            fields.update(latitude=str(self.latitude), longitude=str(self.longitude))
        return fields


@dataclass
class DrainReport:
    delivered: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    pending: int = 0
    last_error: str | None = None


SCHEMA = """
CREATE TABLE IF NOT EXISTS pending (
    capture_id TEXT PRIMARY KEY, form TEXT NOT NULL, image BLOB NOT NULL, content_type TEXT NOT NULL,
    enqueued_at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT);
CREATE TABLE IF NOT EXISTS delivered (
    capture_id TEXT PRIMARY KEY, inspection_id TEXT NOT NULL, verdict TEXT NOT NULL, delivered_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS rejected (
    capture_id TEXT PRIMARY KEY, form TEXT NOT NULL, status INTEGER NOT NULL, error TEXT NOT NULL, rejected_at REAL NOT NULL);
"""


class TruckClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        queue_path: Path,
        timeout_s: float = 5.0,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
    ):
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.backoff_initial_s, self.backoff_max_s = backoff_initial_s, backoff_max_s
        queue_path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(queue_path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")  # queued means on disk
        # A queued photo is unblurred (the service protects what it stores): overwrite its pages when its row goes,
        # rather than leave it readable in the file's free pages. Some SQLite builds do this by default; not all.
        self.db.execute("PRAGMA secure_delete=ON")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def enqueue(self, capture: Capture) -> str:
        self.db.execute(
            "INSERT OR IGNORE INTO pending (capture_id, form, image, content_type, enqueued_at) VALUES (?, ?, ?, ?, ?)",
            (capture.capture_id, json.dumps(capture.form()), capture.image, capture.content_type, time.time()),
        )
        return capture.capture_id

    def send(self, capture: Capture) -> DrainReport:
        """Queue the capture, then try to deliver everything queued, oldest first."""
        self.enqueue(capture)
        return self.deliver_pending()

    def pending_count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM pending").fetchone()[0]

    def delivered(self, capture_id: str) -> dict | None:
        row = self.db.execute("SELECT inspection_id, verdict FROM delivered WHERE capture_id = ?", (capture_id,)).fetchone()
        return {"inspection_id": row[0], "verdict": row[1]} if row else None

    def deliver_pending(self) -> DrainReport:
        """One pass over the queue; stops at the first transient failure (the network is down)."""
        report = DrainReport()
        rows = self.db.execute("SELECT capture_id, form, image, content_type FROM pending ORDER BY enqueued_at").fetchall()
        with httpx.Client(base_url=self.base_url, timeout=self.timeout_s, headers={"X-API-Key": self.api_key}) as http:
            for capture_id, form, image, content_type in rows:
                try:
                    response = http.post("/v1/inspections", data=json.loads(form), files={"image": ("capture", image, content_type)})
                except httpx.HTTPError as err:
                    report.last_error = f"{type(err).__name__}: {err}"
                    self._note_attempt(capture_id, report.last_error)
                    break
                if response.status_code in (200, 201):
                    body = response.json()
                    with self.db:  # delivered and dequeued together
                        self.db.execute("BEGIN")
                        self.db.execute(
                            "INSERT OR REPLACE INTO delivered VALUES (?, ?, ?, ?)", (capture_id, body["id"], body["verdict"], time.time())
                        )
                        self.db.execute("DELETE FROM pending WHERE capture_id = ?", (capture_id,))
                    report.delivered.append(capture_id)
                elif response.status_code in KEEP_QUEUED_STATUS:
                    report.last_error = f"HTTP {response.status_code}: {response.text[:200]}"
                    self._note_attempt(capture_id, report.last_error)
                    break
                else:  # the service will never accept this capture as it is: keep it aside for a person
                    with self.db:
                        self.db.execute("BEGIN")
                        self.db.execute(
                            "INSERT OR REPLACE INTO rejected VALUES (?, ?, ?, ?, ?)",
                            (capture_id, form, response.status_code, response.text[:1000], time.time()),
                        )
                        self.db.execute("DELETE FROM pending WHERE capture_id = ?", (capture_id,))
                    report.rejected.append(capture_id)
        if report.delivered or report.rejected:
            # secure_delete overwrote the photos' pages with new WAL frames; their old frames stay readable in the WAL
            # file until a checkpoint moves the new ones into the database and empties it.
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        report.pending = self.pending_count()
        return report

    def drain(self, max_seconds: float) -> DrainReport:
        """Retry with exponential backoff (and jitter) until the queue is empty or time runs out."""
        deadline = time.monotonic() + max_seconds
        delay = self.backoff_initial_s
        total = DrainReport()
        while True:
            report = self.deliver_pending()
            total.delivered += report.delivered
            total.rejected += report.rejected
            total.pending, total.last_error = report.pending, report.last_error
            if report.pending == 0 or time.monotonic() >= deadline:
                return total
            if report.delivered:
                delay = self.backoff_initial_s
            time.sleep(min(delay * random.uniform(0.5, 1.0), max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, self.backoff_max_s)

    def _note_attempt(self, capture_id: str, error: str) -> None:
        self.db.execute("UPDATE pending SET attempts = attempts + 1, last_error = ? WHERE capture_id = ?", (error, capture_id))


def _client_from_env() -> TruckClient:
    return TruckClient(
        os.environ.get("BINSIGHT_SERVICE_URL", "http://127.0.0.1:8000"),
        os.environ.get("BINSIGHT_API_KEY", ""),
        Path(os.environ.get("BINSIGHT_QUEUE", "var/truck-queue.sqlite")),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serve.truck_client", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    send = sub.add_parser("send", help="queue a photo and try to deliver the queue")
    send.add_argument("image", type=Path)
    send.add_argument("--bin-id", required=True)
    send.add_argument("--fraction", required=True)
    send.add_argument("--truck-id", default=os.environ.get("BINSIGHT_TRUCK_ID"))
    send.add_argument("--capture-id", default=None)
    send.add_argument("--lat", type=float, default=None)
    send.add_argument("--lon", type=float, default=None)
    drain = sub.add_parser("drain", help="retry the queue with backoff")
    drain.add_argument("--max-seconds", type=float, default=60.0)
    sub.add_parser("status", help="how many captures wait")
    args = parser.parse_args(argv)
    client = _client_from_env()
    if args.command == "send":
        if not args.truck_id:
            parser.error("--truck-id or BINSIGHT_TRUCK_ID is required")
        data = args.image.read_bytes()
        capture = Capture(
            image=data, bin_id=args.bin_id, truck_id=args.truck_id, fraction=args.fraction, latitude=args.lat, longitude=args.lon,
            content_type="image/png" if data.startswith(b"\x89PNG") else "image/jpeg",
            **({"capture_id": args.capture_id} if args.capture_id else {}),
        )
        report = client.send(capture)
        result = client.delivered(capture.capture_id)
        print(json.dumps({"capture_id": capture.capture_id, "result": result, "pending": report.pending, "last_error": report.last_error}))
        return 0
    if args.command == "drain":
        report = client.drain(args.max_seconds)
        print(json.dumps({"delivered": len(report.delivered), "rejected": len(report.rejected), "pending": report.pending, "last_error": report.last_error}))
        return 0 if report.pending == 0 else 1
    print(json.dumps({"pending": client.pending_count()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
