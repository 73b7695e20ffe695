"""The truck client against the real service, stopped and started mid-run: every capture arrives once."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from serve.truck_client import Capture, TruckClient
from tests.serve_helpers import scene_jpeg

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    """`python -m serve.cli serve` in a subprocess, as an operator would start it."""

    def __init__(self, env: dict, port: int):
        self.env, self.port, self.proc = env, port, None
        self.url = f"http://127.0.0.1:{port}"

    def start(self, timeout_s: float = 60) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "serve.cli", "serve"], env=self.env, cwd=REPO,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"service exited: {self.proc.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/health/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("service did not become ready")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


@pytest.fixture
def service(tmp_path, tiny_model_dir):
    port = free_port()
    env = {**os.environ, "BINSIGHT_PORT": str(port), "BINSIGHT_MODEL_DIR": str(tiny_model_dir),
           "BINSIGHT_DATABASE_URL": f"sqlite:///{tmp_path / 'service.db'}", "BINSIGHT_IMAGE_DIR": str(tmp_path / "images")}
    key = subprocess.run([sys.executable, "-m", "serve.cli", "create-key", "truck-7", "--fleet"], env=env, cwd=REPO,
                         capture_output=True, text=True, check=True).stdout.strip()
    svc = Service(env, port)
    yield svc, key
    if svc.proc and svc.proc.poll() is None:
        svc.kill()


def captures(dataset, start, count):
    return [Capture(image=scene_jpeg(dataset, i % 5), bin_id=f"BIN-{i}", truck_id="HAM-EB-107", fraction="biowaste",
                    latitude=51.67, longitude=7.81) for i in range(start, start + count)]


def test_queue_survives_outages_and_delivers_each_capture_once(service, tmp_path, tiny_dataset):
    svc, key = service
    client = TruckClient(svc.url, key, tmp_path / "queue.sqlite", timeout_s=5, backoff_initial_s=0.05, backoff_max_s=0.2)
    sent, by_id = [], {}

    # 1. Dead zone: the service is down, every capture waits in the queue.
    for c in captures(tiny_dataset, 0, 3):
        report = client.send(c)
        sent.append(c.capture_id)
        by_id[c.capture_id] = c
        assert report.delivered == [] and "ConnectError" in report.last_error
    assert client.pending_count() == 3

    # 2. Coverage again: the queue drains.
    svc.start()
    assert client.drain(max_seconds=30).pending == 0

    # 3. The service dies hard while the truck keeps collecting, then comes back.
    svc.kill()
    for c in captures(tiny_dataset, 3, 2):
        client.send(c)
        sent.append(c.capture_id)
        by_id[c.capture_id] = c
    assert client.pending_count() == 2
    svc.start()
    for c in captures(tiny_dataset, 5, 2):
        client.send(c)
        sent.append(c.capture_id)
        by_id[c.capture_id] = c
    assert client.drain(max_seconds=30).pending == 0

    # 4. A response lost on the way back: the truck still has the capture queued and sends it again.
    lost = by_id[sent[0]]
    first_id = client.delivered(lost.capture_id)["inspection_id"]
    client.db.execute("DELETE FROM delivered WHERE capture_id = ?", (lost.capture_id,))
    client.send(lost)
    assert client.delivered(lost.capture_id)["inspection_id"] == first_id

    # The service holds each capture exactly once.
    page = httpx.get(f"{svc.url}/v1/inspections", params={"truck_id": "HAM-EB-107", "limit": 100}, headers={"X-API-Key": key}).json()
    assert page["total"] == len(sent) == 7
    assert sorted(i["capture_id"] for i in page["items"]) == sorted(sent)
    client.close()


def test_permanently_refused_capture_is_set_aside_not_retried(service, tmp_path, tiny_dataset):
    svc, key = service
    svc.start()
    client = TruckClient(svc.url, key, tmp_path / "queue.sqlite")
    bad = Capture(image=b"not a photo", bin_id="BIN-X", truck_id="HAM-EB-107", fraction="biowaste")
    good = captures(tiny_dataset, 0, 1)[0]
    client.enqueue(bad)
    report = client.send(good)
    assert report.rejected == [bad.capture_id] and report.delivered == [good.capture_id] and report.pending == 0
    status, = client.db.execute("SELECT status FROM rejected WHERE capture_id = ?", (bad.capture_id,)).fetchone()
    assert status == 415


def test_wrong_key_keeps_captures_queued(service, tmp_path, tiny_dataset):
    svc, _ = service
    svc.start()
    client = TruckClient(svc.url, "bsk_wrong", tmp_path / "queue.sqlite")
    report = client.send(captures(tiny_dataset, 0, 1)[0])
    assert report.pending == 1 and "401" in report.last_error


def test_a_delivered_photo_leaves_no_readable_copy_in_the_queue_file(tmp_path, monkeypatch):
    """The queue holds photos unblurred; once delivered (or set aside), nothing of them may stay in the file's free pages."""
    marker = os.urandom(32)
    photo = b"\xff\xd8\xff" + marker * 2000  # 64 kB: its own overflow pages, as a real frame has
    answers = iter([httpx.Response(201, json={"id": "i-1", "verdict": "clean"}), httpx.Response(422, json={"detail": "corrupt"})])
    real_client = httpx.Client
    monkeypatch.setattr(httpx, "Client", lambda **kw: real_client(transport=httpx.MockTransport(lambda request: next(answers)), **kw))
    real_connect = sqlite3.connect

    def connect_as_a_build_without_secure_delete(*args, **kwargs):  # Debian's SQLite has it on by default; others do not
        db = real_connect(*args, **kwargs)
        db.execute("PRAGMA secure_delete=OFF")
        return db

    monkeypatch.setattr(sqlite3, "connect", connect_as_a_build_without_secure_delete)
    queue_path = tmp_path / "queue.sqlite"
    client = TruckClient("http://service.invalid", "bsk_test", queue_path)
    for n, image in ((1, photo), (2, photo.replace(marker, marker[::-1]))):
        client.enqueue(Capture(image=image, bin_id="E2004711", truck_id="HAM-EB-101", fraction="biowaste", capture_id=f"cap-{n}"))
    assert marker in b"".join(p.read_bytes() for p in tmp_path.glob("queue.sqlite*"))
    report = client.deliver_pending()
    assert client.delivered("cap-1") == {"inspection_id": "i-1", "verdict": "clean"} and report.rejected == ["cap-2"]
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("queue.sqlite*"))  # still open: the WAL file too, as a running client leaves it
    assert marker not in stored and marker[::-1] not in stored
    client.close()
