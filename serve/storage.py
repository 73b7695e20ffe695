"""Storing an inspection and its image so that a crash leaves both or neither.

Order of writes: the image goes to a temporary name, is fsynced and renamed
into place; then the database row is committed. A crash before the commit
leaves an image file with no row, which `sweep_orphans` (run in the
background after start-up, serve/lifecycle.py) deletes; a crash after it
leaves both. A reader therefore never sees a row whose image is missing.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Protocol

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from pipeline.atomic import write_bytes_atomic
from serve.db import Inspection

ORPHAN_GRACE = timedelta(minutes=10)  # never sweep a file a request may still be committing
RECENT_CAPTURES = 50_000  # about 20 MB; a fleet's retries come within hours, well inside this window


def image_relpath(inspection_id: str, extension: str) -> str:
    # Two levels of fan-out keep directories small at millions of images.
    return f"{inspection_id[:2]}/{inspection_id}.{extension}"


class Rendered(Protocol):
    data: bytes  # what is written; serve/privacy.py's SafeImage also says what was blurred


class PendingImage:
    """An image being rendered, written (and fsynced) in the background while the model runs."""

    def __init__(self, path: Path, future: Future):
        self.path, self.future = path, future

    def wait(self) -> Rendered:
        return self.future.result()

    def discard(self) -> None:
        """The request failed before its row was committed: the image must not stay."""
        try:
            self.future.result()
        finally:
            self.path.unlink(missing_ok=True)


class RecentCaptures:
    """Ids of the inspections stored last, by (truck id, capture id), in memory.

    Lets a retry be answered without decoding or inference and without a
    database lookup on every upload. Only a shortcut: a retry it does not know
    (older, stored before a restart or by another process) is still caught by
    the unique constraint when its row is inserted.
    """

    def __init__(self, capacity: int = RECENT_CAPTURES):
        self.capacity = capacity
        self._ids: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, truck_id: str, capture_id: str) -> str | None:
        with self._lock:
            return self._ids.get((truck_id, capture_id))

    def put(self, truck_id: str, capture_id: str, inspection_id: str) -> None:
        with self._lock:
            self._ids[(truck_id, capture_id)] = inspection_id
            if len(self._ids) > self.capacity:
                self._ids.popitem(last=False)


class InspectionStore:
    def __init__(self, sessions: sessionmaker, image_dir: Path):
        self.sessions = sessions
        # The per-request lookup and insert go through Core on the engine: the
        # ORM's unit of work doubles their cost and they run on every upload.
        self.engine = sessions.kw["bind"]
        self.image_dir = image_dir
        # Image writes wait on the disk, not the CPU: overlapping them with
        # inference takes their fsyncs off a request's critical path.
        self._writer = ThreadPoolExecutor(max_workers=4, thread_name_prefix="image-writer")
        self.recent = RecentCaptures()

    def begin_image(self, inspection_id: str, extension: str, render: Callable[[], Rendered]) -> PendingImage:
        """Render the image to store (e.g. the privacy-protected photo) and write it, in a writer thread."""
        path = self.image_dir / image_relpath(inspection_id, extension)
        return PendingImage(path, self._writer.submit(_render_and_write, path, render))

    def find(self, truck_id: str, capture_id: str) -> Inspection | None:
        query = select(Inspection.__table__).where(Inspection.truck_id == truck_id, Inspection.capture_id == capture_id)
        with self.engine.connect() as connection:
            found = connection.execute(query).first()
        return None if found is None else Inspection(**found._mapping)

    def find_recent(self, truck_id: str, capture_id: str) -> Inspection | None:
        """The inspection of a capture this process stored lately, else None (see RecentCaptures)."""
        inspection_id = self.recent.get(truck_id, capture_id)
        return None if inspection_id is None else self.get(inspection_id)

    def get(self, inspection_id: str) -> Inspection | None:
        with self.sessions() as s:
            return s.get(Inspection, inspection_id)

    def add(self, inspection: Inspection, image: bytes, extension: str, pending: PendingImage | None = None) -> tuple[Inspection, bool]:
        """Store a new inspection with its image; returns (stored inspection, created).

        `image` is the upload as received: its SHA-256 is what a retry is
        compared with. It is written only when no `pending` image (rendered
        from it, e.g. with faces and plates blurred) is given.

        If the same truck and capture id were stored meanwhile (a retry racing
        the original), the first one wins and is returned with created=False.
        """
        inspection.id = inspection.id or str(uuid.uuid4())  # needed now: it names the image file
        inspection.image_path = image_relpath(inspection.id, extension)
        inspection.image_sha256 = hashlib.sha256(image).hexdigest()
        path = self.image_dir / inspection.image_path
        try:
            if pending is None:
                write_bytes_atomic(path, image)
            else:
                assert pending.path == path, "the pending image belongs to another inspection"
                pending.wait()  # the row is committed only once its image is on disk

            with self.engine.begin() as connection:
                connection.execute(insert(Inspection), [_column_values(inspection)])
        except IntegrityError:
            path.unlink(missing_ok=True)
            existing = self.find(inspection.truck_id, inspection.capture_id)
            if existing is None:
                raise
            self.recent.put(existing.truck_id, existing.capture_id, existing.id)
            return existing, False
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        self.recent.put(inspection.truck_id, inspection.capture_id, inspection.id)
        return inspection, True

    def close(self) -> None:
        """Wait for the image writes in flight, then end the writer threads (at shutdown)."""
        self._writer.shutdown(wait=True)

    def image_file(self, inspection: Inspection) -> Path | None:
        if inspection.image_path is None:
            return None
        path = self.image_dir / inspection.image_path
        return path if path.is_file() else None

    def sweep_orphans(self, now: datetime | None = None, stop: threading.Event | None = None) -> int:
        """Delete image files that no inspection refers to (left by a crash before commit).

        Safe while requests are served: a file they write is younger than
        ORPHAN_GRACE. `stop` ends the walk early (a shutdown need not wait for
        millions of files).
        """
        now = now or datetime.now(timezone.utc)
        if not self.image_dir.exists():
            return 0
        with self.sessions() as s:
            known = set(s.scalars(select(Inspection.image_path).where(Inspection.image_path.is_not(None))))
        removed = 0
        for path in self.image_dir.rglob("*"):
            if stop is not None and stop.is_set():
                break
            if not path.is_file():
                continue
            rel = path.relative_to(self.image_dir).as_posix()
            age = now - datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
            if rel not in known and age > ORPHAN_GRACE:
                path.unlink(missing_ok=True)
                removed += 1
        return removed


def _render_and_write(path: Path, render: Callable[[], Rendered]) -> Rendered:
    rendered = render()
    write_bytes_atomic(path, rendered.data)
    return rendered


def _column_values(inspection: Inspection) -> dict:
    return {column.key: getattr(inspection, column.key) for column in Inspection.__table__.columns}
