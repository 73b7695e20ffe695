"""Start-up and shutdown: migrations where they are safe, nothing blocking the event loop, nothing left running."""

from __future__ import annotations

import os
import threading
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, inspect

from serve import auth, lifecycle
from serve.app import create_app
from serve.cli import main as serve_cli
from serve.db import make_engine
from serve.detector import Detector
from serve.migrate import SchemaNotCurrent, current_revisions, head_revisions
from serve.settings import ServeSettings
from tests.serve_helpers import form, scene_jpeg


def settings_for(tmp_path, database_url, model_dir=None, **overrides) -> ServeSettings:
    return ServeSettings(model_dir=model_dir or tmp_path / "no-model", database_url=database_url, image_dir=tmp_path / "images",
                         _env_file=None, **overrides)


@pytest.fixture
def empty_postgres(postgres_url):
    """An empty PostgreSQL database (no tables, no alembic_version)."""
    from sqlalchemy import text

    engine = create_engine(postgres_url)
    with engine.begin() as c:
        c.execute(text("DROP SCHEMA public CASCADE"))
        c.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return postgres_url


def tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def revisions(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return current_revisions(engine)
    finally:
        engine.dispose()


def test_sqlite_is_migrated_at_start_up_by_default(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    settings = settings_for(tmp_path, url)
    assert settings.auto_migrate is None and settings.migrates_itself
    with TestClient(create_app(settings)) as c:
        assert auth.create_key(c.app.state.sessions, "t").startswith("bsk_")
    assert revisions(url) == head_revisions()


def test_postgres_is_not_migrated_at_start_up_and_the_error_names_the_command(tmp_path, empty_postgres):
    settings = settings_for(tmp_path, empty_postgres)
    assert not settings.migrates_itself
    with pytest.raises(SchemaNotCurrent) as refused:
        with TestClient(create_app(settings)):
            pass
    assert "binsight migrate" in str(refused.value) and "without the binsight tables" in str(refused.value)
    assert tables(empty_postgres) == set()  # nothing created behind the operator's back


def test_postgres_starts_once_binsight_migrate_has_run(tmp_path, empty_postgres, monkeypatch, capsys):
    monkeypatch.setenv("BINSIGHT_DATABASE_URL", empty_postgres)
    monkeypatch.setenv("BINSIGHT_IMAGE_DIR", str(tmp_path / "images"))
    assert serve_cli(["create-key", "gateway", "--fleet"]) == 2  # the operator's commands say it too, in one line
    assert "binsight migrate" in capsys.readouterr().err
    assert serve_cli(["migrate"]) == 0 and "newest schema" in capsys.readouterr().out
    assert revisions(empty_postgres) == head_revisions()
    with TestClient(create_app(settings_for(tmp_path, empty_postgres))) as c:
        assert c.get("/health/live").status_code == 200


def test_auto_migrate_can_be_switched_on_for_postgres(tmp_path, empty_postgres):
    with TestClient(create_app(settings_for(tmp_path, empty_postgres, auto_migrate=True))):
        pass
    assert revisions(empty_postgres) == head_revisions()


def test_serve_refuses_to_start_on_an_old_schema_in_one_line(tmp_path, empty_postgres, tiny_model_dir, monkeypatch, capsys):
    monkeypatch.setenv("BINSIGHT_DATABASE_URL", empty_postgres)
    monkeypatch.setenv("BINSIGHT_MODEL_DIR", str(tiny_model_dir))
    assert serve_cli(["serve"]) == 2  # before uvicorn starts: no server, no traceback
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "binsight migrate" in err


def test_sqlite_can_be_kept_from_migrating(tmp_path):
    with pytest.raises(SchemaNotCurrent, match="binsight migrate"):
        with TestClient(create_app(settings_for(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", auto_migrate=False))):
            pass


def app_threads() -> set[threading.Thread]:
    # Daemon or not: under TestClient every thread the app starts inherits the
    # daemon flag of the portal's thread, while under uvicorn (event loop in the
    # main thread) the same threads are non-daemon and would hold up the exit.
    return set(threading.enumerate())


def wait_for_end(threads: set[threading.Thread], seconds: float = 10.0) -> set[threading.Thread]:
    """The threads still alive after up to `seconds` (AnyIO's workers end shortly after their event loop)."""
    deadline = time.monotonic() + seconds
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    return {t for t in threads if t.is_alive()}


def test_shutdown_leaves_no_thread_of_the_app_running(tmp_path, tiny_model_dir, tiny_dataset):
    before = app_threads()
    settings = settings_for(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", model_dir=tiny_model_dir, auth_cache_s=0)
    with TestClient(create_app(settings)) as c:
        c.headers["X-API-Key"] = auth.create_key(c.app.state.sessions, "t")
        for i in range(3):  # uploads start the image writers
            r = c.post("/v1/inspections", data=form(capture_id=f"t{i}"), files={"image": ("b.jpg", scene_jpeg(tiny_dataset, i), "image/jpeg")})
            assert r.status_code == 201, r.text
        during = app_threads() - before
        assert any(t.name.startswith("image-writer") for t in during), sorted(t.name for t in during)
    left = wait_for_end(app_threads() - before)
    assert not left, f"still running after shutdown: {sorted(t.name for t in left)}"


def test_shutdown_after_a_failed_start_leaves_nothing_running(tmp_path):
    before = app_threads()
    with pytest.raises(SchemaNotCurrent):
        with TestClient(create_app(settings_for(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", auto_migrate=False))):
            pass
    assert not wait_for_end(app_threads() - before)


def test_start_up_work_runs_off_the_event_loop(tmp_path, tiny_model_dir, monkeypatch):
    ran_in: dict[str, threading.Thread] = {}

    def recorded(name, function):
        def wrapper(*args, **kwargs):
            ran_in[name] = threading.current_thread()
            return function(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(lifecycle, "prepare_schema", recorded("migrations", lifecycle.prepare_schema))
    monkeypatch.setattr(Detector, "warm_up", recorded("warm-up", Detector.warm_up))
    monkeypatch.setattr(lifecycle, "Detector", recorded("model loading", Detector))
    monkeypatch.setattr(lifecycle.InspectionStore, "sweep_orphans", recorded("orphan sweep", lifecycle.InspectionStore.sweep_orphans))
    monkeypatch.setattr(lifecycle.InspectionStore, "close", recorded("writer shutdown", lifecycle.InspectionStore.close))
    settings = settings_for(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", model_dir=tiny_model_dir)
    with TestClient(create_app(settings)) as c:
        loop_thread = c.portal.call(threading.current_thread)
        assert c.get("/health/ready").status_code == 200
    assert set(ran_in) == {"migrations", "model loading", "warm-up", "orphan sweep", "writer shutdown"}
    assert all(thread is not loop_thread for thread in ran_in.values()), {k: t.name for k, t in ran_in.items()}


def test_orphaned_images_are_swept_in_the_background(tmp_path):
    orphan = tmp_path / "images" / "ab" / "abandoned.jpg"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"left by a crash before its row was committed")
    an_hour_ago = time.time() - 3600
    os.utime(orphan, (an_hour_ago, an_hour_ago))
    with TestClient(create_app(settings_for(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}"))) as c:
        assert c.get("/health/live").status_code == 200  # serving while the sweep runs
        deadline = time.monotonic() + 10
        while orphan.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    assert not orphan.exists()
