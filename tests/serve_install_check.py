"""Smoke test of a service install without the training stack (`make check-serve-install`).

    VENV/bin/python tests/serve_install_check.py --venv VENV --model MODEL_DIR --work DIR

In VENV, where `pip install .` put binsight without extras: the training
stack must not be importable; `binsight migrate` and `binsight create-key`
work; `binsight serve` starts with the model in MODEL_DIR (model.onnx,
model_card.json, photo.jpg: tests/tiny_model.py), reports ready on
/health/ready, and judges the photo on POST /v1/inspections. Everything runs
from DIR, outside the repository, so that the installed package is what is
imported, not the source tree. Standard library and httpx (a base dependency).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx

TRAINING_STACK = ("torch", "torchvision", "mlflow", "dvc", "albumentations", "pycocotools")
READY_WITHIN_S = 60


def fail(message: str) -> None:
    print(f"check-serve-install: FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, required=True)
    parser.add_argument("--model", type=Path, required=True, help="folder with model.onnx, model_card.json and photo.jpg")
    parser.add_argument("--work", type=Path, required=True, help="empty folder for the database, images and logs")
    args = parser.parse_args(argv)
    venv = args.venv.absolute()  # not resolve(): bin/python is a link to the base interpreter
    python, binsight = venv / "bin" / "python", venv / "bin" / "binsight"
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("BINSIGHT_", "PYTHON", "VIRTUAL_ENV"))},
        "BINSIGHT_MODEL_DIR": str(args.model.resolve()),
        "BINSIGHT_DATABASE_URL": f"sqlite:///{work / 'binsight.db'}",
        "BINSIGHT_IMAGE_DIR": str(work / "images"),
        "BINSIGHT_HOST": "127.0.0.1",
        "BINSIGHT_PORT": str(port),
    }

    def run(*cmd: str | Path) -> subprocess.CompletedProcess:
        return subprocess.run([str(c) for c in cmd], cwd=work, env=env, capture_output=True, text=True, timeout=120)

    for name in TRAINING_STACK:
        if run(python, "-c", f"import {name}").returncode == 0:
            fail(f"`import {name}` works in {args.venv}: the base install pulls in the training stack")
    where = run(python, "-c", "import serve, pipeline; print(serve.__file__); print(pipeline.__file__)").stdout.split()
    if len(where) != 2 or any(not path.startswith(str(venv)) for path in where):
        fail(f"serve/pipeline are not imported from the installed package but from {where}")
    print(f"ok: {', '.join(TRAINING_STACK)} not importable; binsight imported from {args.venv}")

    for cmd in (("migrate",), ("create-key", "ci-truck", "--truck", "CI-1")):
        done = run(binsight, *cmd)
        if done.returncode != 0:
            fail(f"binsight {' '.join(cmd)} exited {done.returncode}: {done.stderr.strip()}")
    key = done.stdout.strip().splitlines()[-1]
    print("ok: binsight migrate, binsight create-key")

    log = open(work / "serve.log", "w")
    server = subprocess.Popen([str(binsight), "serve"], cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        started = time.monotonic()
        with httpx.Client(base_url=base, timeout=30) as client:
            while True:
                if server.poll() is not None:
                    fail(f"binsight serve exited {server.returncode}:\n{(work / 'serve.log').read_text()[-3000:]}")
                if time.monotonic() - started > READY_WITHIN_S:
                    fail(f"not ready within {READY_WITHIN_S} s:\n{(work / 'serve.log').read_text()[-3000:]}")
                try:
                    ready = client.get("/health/ready")
                    if ready.status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.25)
            print(f"ok: ready after {time.monotonic() - started:.1f} s: {ready.text}")
            fields = {
                "bin_id": "E200A1B2C3D4", "truck_id": "CI-1", "fraction": "biowaste",
                "captured_at": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
                "capture_id": "ci-capture-1", "latitude": "51.6739", "longitude": "7.8159",
            }
            photo = (args.model / "photo.jpg").read_bytes()
            answer = client.post("/v1/inspections", data=fields, files={"image": ("photo.jpg", photo, "image/jpeg")},
                                 headers={"X-API-Key": key})
            if answer.status_code != 201:
                fail(f"POST /v1/inspections answered {answer.status_code}: {answer.text[:500]}")
            verdict = answer.json().get("verdict")
            if verdict not in ("clean", "contaminated", "inconclusive"):
                fail(f"POST /v1/inspections gave no verdict: {answer.text[:500]}")
            print(f"ok: POST /v1/inspections -> 201, verdict {verdict}")
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
