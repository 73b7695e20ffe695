"""Start-up and shutdown of the service (the app's lifespan).

Start-up: the notices' configuration checked, database schema (migrated or
checked, serve/migrate.py), image store, the model loaded and warmed up; then
the orphan sweep starts in the background, and the retention job
(serve/retention_job.py) when it is on. Everything that blocks (database,
disk, onnxruntime) runs in a worker thread, never on the event loop.

Shutdown undoes it in reverse: stop the retention job and the sweep, let image writes in flight
finish, close the detector the app loaded itself, dispose the engine. Nothing
the app started keeps running after it.
"""

from __future__ import annotations

import logging
import threading
from contextlib import AsyncExitStack, asynccontextmanager
from typing import AsyncIterator

from anyio import to_thread
from fastapi import FastAPI

from serve.auth import KeyVerifier
from serve.db import make_engine, make_sessionmaker
from serve.detector import Detector, ModelMissingError
from serve.hopper_masks import load_masks
from serve.migrate import prepare_schema
from serve.privacy import PrivacyFilter
from serve.notice_config import load_notice_config
from serve.quality import departure_warning, effective_spec
from serve.retention import apply_configured
from serve.retention_job import RetentionJob
from serve.settings import ServeSettings
from serve.storage import InspectionStore

log = logging.getLogger("binsight.serve")


class OrphanSweep:
    """`InspectionStore.sweep_orphans` in a thread of its own, stopped and joined at shutdown.

    In the background because it walks the whole image folder, which at
    millions of images would hold back readiness for minutes; it is safe
    beside running requests (see sweep_orphans).
    """

    def __init__(self, store: InspectionStore):
        self.store = store
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="binsight-orphan-sweep")

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            removed = self.store.sweep_orphans(stop=self._stop)
        except Exception:  # housekeeping: a failure is logged, the service keeps serving
            log.exception("orphan image sweep failed")
            return
        if removed:
            log.info("removed %d orphaned image files", removed)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


async def load_detector(settings: ServeSettings) -> tuple[Detector | None, str | None]:
    """The model of settings.model_dir, or None and why not (the service then answers 503 and says so)."""
    try:
        detector = await to_thread.run_sync(Detector, settings.model_dir, settings.inference_threads, settings.inference_workers)
    except ModelMissingError as err:
        return None, str(err)
    return detector, None


def privacy_filter(settings: ServeSettings) -> PrivacyFilter:
    masks = None if settings.privacy_masks is None else load_masks(settings.privacy_masks)
    return PrivacyFilter(masks, settings.privacy_detection_side, blur=settings.privacy_blur)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: ServeSettings = app.state.settings
    # A mistake in the notices' configuration stops the start here, in one line naming the file and key.
    app.state.notice_config = await to_thread.run_sync(load_notice_config, settings.notices_config_path)
    async with AsyncExitStack() as on_shutdown:  # runs its callbacks in reverse, also when start-up fails
        engine = make_engine(settings.database_url)
        on_shutdown.push_async_callback(to_thread.run_sync, engine.dispose)
        await to_thread.run_sync(prepare_schema, engine, settings.migrates_itself)
        sessions = make_sessionmaker(engine)
        store = InspectionStore(sessions, settings.image_dir)
        on_shutdown.push_async_callback(to_thread.run_sync, store.close)
        app.state.sessions = sessions
        app.state.keys = KeyVerifier(sessions, settings.auth_cache_s)
        app.state.store = store
        # A bad mask file stops the start here (MaskFileError names file and problem): never store unmasked photos by mistake.
        app.state.privacy = await to_thread.run_sync(privacy_filter, settings)
        if app.state.privacy.unprotected_warning:
            log.warning(app.state.privacy.unprotected_warning)

        detector, app.state.model_error = app.state.given_detector, None
        if detector is None:
            detector, app.state.model_error = await load_detector(settings)
            close = getattr(detector, "close", None)  # only what the app loaded is the app's to close
            if close is not None:
                on_shutdown.push_async_callback(to_thread.run_sync, close)
        app.state.detector, app.state.spec = detector, None
        if detector is not None:
            # The card's inference size and quality gate (what the evaluation measured), unless overridden.
            app.state.spec = effective_spec(detector.spec, settings)
            if (departure := departure_warning(detector.spec, app.state.spec)) is not None:
                log.warning(departure)
            if getattr(detector, "threshold_warning", None):  # an injected test detector may have none
                log.warning(detector.threshold_warning)
            await to_thread.run_sync(detector.warm_up)

        sweep = OrphanSweep(store)
        sweep.start()
        on_shutdown.push_async_callback(to_thread.run_sync, sweep.stop)
        app.state.retention_job = None  # BINSIGHT_RETENTION_INTERVAL_MINUTES=0: `binsight retention` from cron instead
        if settings.retention_interval_minutes > 0:
            retention = RetentionJob(lambda: apply_configured(sessions, settings, app.state.notice_config), settings.retention_interval_minutes * 60)
            retention.start()
            on_shutdown.push_async_callback(to_thread.run_sync, retention.stop)
            app.state.retention_job = retention
        yield
