"""Helpers of the browser tests (tests/test_browser_review.py): a live server in a thread, photos, a detector.

The pages are driven through a real socket by headless Chromium, so the app
runs under uvicorn on 127.0.0.1 (a free port picked by the OS) in a
background thread of the test process: the tests keep direct access to the
app's database (`app.state.sessions`) to seed accounts and check what a
click stored.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import numpy as np
import uvicorn
from fastapi import FastAPI

from pipeline.inspection import Detection
from tests.serve_helpers import jpeg_bytes
from tests.test_serve_injected import CAN_BOX, CARDBOARD_BOX, HEIGHT, WIDTH, SeeingDetector

# Where the SeeingDetector's objects are, as shares of the photo's width and height, so that photos of any size show them.
CAN_SHARE = (CAN_BOX[0] / WIDTH, CAN_BOX[1] / HEIGHT, CAN_BOX[2] / WIDTH, CAN_BOX[3] / HEIGHT)
CARDBOARD_SHARE = (CARDBOARD_BOX[0] / WIDTH, CARDBOARD_BOX[1] / HEIGHT, CARDBOARD_BOX[2] / WIDTH, CARDBOARD_BOX[3] / HEIGHT)


class AnySizeSeeingDetector(SeeingDetector):
    """SeeingDetector's can and cardboard (and faint bag) at the same place in a photo of any size."""

    def detect(self, rgb: np.ndarray, scale: float = 1.0, min_score: float | None = None) -> list[Detection]:
        self.calls += 1
        w, h = rgb.shape[1] * scale, rgb.shape[0] * scale  # the uploaded photo's pixels

        def box(share):
            return (share[0] * w, share[1] * h, share[2] * w, share[3] * h)

        return [Detection("can", 0.9, box(CAN_SHARE)), Detection("cardboard", 0.8, box(CARDBOARD_SHARE)),
                Detection("plastic_bag", 0.1, (0.0, 0.0, 10.0, 10.0))]  # fmt: skip


def textured_photo(width: int, height: int, seed: int, block: int = 8) -> bytes:
    """A textured, well lit bin of the given size (passes the quality gate); little red, so drawn boxes stand out."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(60, 200, (-(-height // block), -(-width // block), 3), dtype=np.uint8)
    blocks[..., 0] //= 3
    rgb = np.repeat(np.repeat(blocks, block, axis=0), block, axis=1)[:height, :width]
    return jpeg_bytes(np.ascontiguousarray(rgb), quality=90)


def captured(minutes_ago: int) -> str:
    return (datetime.now(timezone.utc) - timedelta(minutes=minutes_ago)).replace(microsecond=0).isoformat()


class SlowDecisionAnswers:
    """ASGI wrapper: holds back the answer to a decision POST by `hold_s` seconds (0: none), after the app has stored it.

    A reviewer's second key press then reliably falls between the first decision's
    storing and its answer, as it does over a real network with a busy server.
    """

    def __init__(self, app):
        self.app = app
        self.hold_s = 0.0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].endswith("/decision") or not self.hold_s:
            return await self.app(scope, receive, send)
        hold_s = self.hold_s

        async def held_send(message):
            if message["type"] == "http.response.start":
                await asyncio.sleep(hold_s)
            await send(message)

        await self.app(scope, receive, held_send)


class LiveServer:
    """uvicorn serving `app` (through `asgi`, a wrapper of it, if given) on 127.0.0.1 in a daemon thread; `url` is its base address."""

    def __init__(self, app: FastAPI, asgi=None):
        self.app = app
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))  # the port is held from here on: no race with another process
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        config = uvicorn.Config(asgi or app, log_level="warning", lifespan="on", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, name="live-server", daemon=True)

    def start(self, timeout: float = 30.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the live server stopped during start-up (see the log above)")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the live server did not start within {timeout} s")
            time.sleep(0.02)

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)
        self._sock.close()


@contextmanager
def live_server(app: FastAPI, asgi=None) -> Iterator[LiveServer]:
    server = LiveServer(app, asgi)
    server.start()
    try:
        yield server
    finally:
        server.stop()
