"""Service speed on this machine, in one run; prints a table.

    python -m bench.serve_bench [--duration 30] [--model-dir models]

1. bare onnxruntime inference on a decoded image, and JPEG decoding;
2. the full endpoint (decode, quality, inference, policy, storage) at concurrency 1;
3. throughput and p50/p95/p99 latency at concurrency 4 and 16 for `--duration` s,
   against the bare model's throughput on the same cores;
4. a crash test: SIGKILL to the service during a load test, restart, and check
   that every request that got a 2xx is in the database with its image;
5. the privacy step's cost: steps 2-3 (c=1 and c=16) again with
   BINSIGHT_PRIVACY_BLUR=false, against the runs above (privacy on, the
   default). The images are the dataset's 320 x 320 JPEGs; the step's cost on
   truck-sized frames is measured by `make bench-privacy`.

The service runs as `python -m serve.cli serve` in a subprocess on loopback,
with its own temporary database and image folder.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def sample_images(data_dir: Path, count: int) -> list[bytes]:
    files = sorted((data_dir / "images").glob("*.jpg"))[:count]
    if not files:
        raise SystemExit(f"no images under {data_dir}/images; run `make data` first")
    return [f.read_bytes() for f in files]


def bare_model(model_dir: Path, images: list[bytes], seconds: float) -> dict:
    from serve.detector import Detector

    detector = Detector(model_dir)
    detector.warm_up()
    decoded = [np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in images]
    decode_times = []
    for b in images:
        t = time.perf_counter()
        np.asarray(Image.open(io.BytesIO(b)).convert("RGB"))
        decode_times.append(time.perf_counter() - t)
    times, end = [], time.perf_counter() + seconds
    i = 0
    while time.perf_counter() < end:
        t = time.perf_counter()
        detector.session.run(None, {detector.input_name: decoded[i % len(decoded)]})
        times.append(time.perf_counter() - t)
        i += 1
    sequential = len(times) / sum(times)
    parallel = parallel_throughput(detector, decoded, seconds)
    # The reference is the better of the two ways the bare model can use the cores.
    return {"inference_p50": statistics.median(times), "decode_p50": statistics.median(decode_times),
            "throughput_sequential": sequential, "throughput_parallel": parallel, "throughput": max(sequential, parallel)}


def parallel_throughput(detector, decoded: list, seconds: float) -> float:
    """Images per second with one single-threaded session per core, all busy at once."""
    import threading

    import onnxruntime as ort

    cores = os.cpu_count() or 1
    counts = [0] * cores
    end = time.perf_counter() + seconds

    def worker(k: int) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(str(detector.model_path), options, providers=["CPUExecutionProvider"])
        session.run(None, {detector.input_name: decoded[0]})
        while time.perf_counter() < end:
            session.run(None, {detector.input_name: decoded[counts[k] % len(decoded)]})
            counts[k] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(cores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - started)


class Service:
    def __init__(self, env: dict, port: int):
        self.env, self.port, self.url, self.proc = env, port, f"http://127.0.0.1:{port}", None

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "serve.cli", "serve"], env=self.env, cwd=REPO,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/health/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise SystemExit("the service did not become ready within 60 s")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)


def form(i: int, truck: str) -> dict:
    return {"bin_id": f"BIN{i % 500:04d}", "truck_id": truck, "fraction": "biowaste",
            "captured_at": datetime.now(timezone.utc).isoformat(), "capture_id": uuid.uuid4().hex}


BOUNDARY = "binsightbench"


def multipart_body(fields: dict, image: bytes) -> bytes:
    parts = [f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()]
    parts.append(f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="b.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'.encode())
    return b"".join(parts) + image + f"\r\n--{BOUNDARY}--\r\n".encode()


class Connection:
    """A minimal keep-alive HTTP/1.1 client: the load generator shares the 2 cores
    with the service, so it must cost as little CPU per request as possible."""

    def __init__(self, port: int, key: str):
        self.port, self.key, self.reader, self.writer = port, key, None, None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {self.key}\r\n"
                f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {len(body)}\r\n\r\n").encode()
        try:
            self.writer.write(head + body)
            await self.writer.drain()
            status_line = await self.reader.readline()
            if not status_line:
                raise ConnectionError("connection closed")
            length = 0
            while (line := await self.reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            return int(status_line.split()[1]), await self.reader.readexactly(length)
        except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError, IndexError):
            self.close()
            raise ConnectionError("request failed") from None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def load(port: int, key: str, images: list[bytes], concurrency: int, seconds: float, truck: str, ok_ids: list | None = None) -> dict:
    import json

    latencies: list[float] = []
    errors = 0
    end = time.perf_counter() + seconds
    counter = iter(range(10**9))

    async def worker():
        nonlocal errors
        connection = Connection(port, key)
        while time.perf_counter() < end:
            i = next(counter)
            body = multipart_body(form(i, truck), images[i % len(images)])
            t = time.perf_counter()
            try:
                status, payload = await connection.post("/v1/inspections", body)
            except ConnectionError:
                errors += 1
                await asyncio.sleep(0.05)
                continue
            if status in (200, 201):
                latencies.append(time.perf_counter() - t)
                if ok_ids is not None:
                    ok_ids.append(json.loads(payload)["id"])
            else:
                errors += 1
        connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {"requests": len(latencies), "errors": errors, "throughput": len(latencies) / elapsed,
            "p50": percentile(latencies, 50), "p95": percentile(latencies, 95), "p99": percentile(latencies, 99)}


def crash_test(service: Service, key: str, images: list[bytes], database_url: str, image_dir: Path) -> dict:
    ok_ids: list[str] = []

    async def run():
        task = asyncio.create_task(load(service.port, key, images, 8, 8.0, "CRASH", ok_ids))
        await asyncio.sleep(4.0)
        service.kill()
        return await task

    asyncio.run(run())
    service.start()
    from sqlalchemy import create_engine, select

    from serve.db import Inspection

    engine = create_engine(database_url)
    with engine.connect() as c:
        rows = {r.id: r.image_path for r in c.execute(select(Inspection.id, Inspection.image_path))}
    missing_rows = [i for i in ok_ids if i not in rows]
    missing_images = [i for i in ok_ids if i in rows and not (image_dir / rows[i]).is_file()]
    return {"acknowledged": len(ok_ids), "missing_rows": len(missing_rows), "missing_images": len(missing_images)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=Path("models"))
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per load level")
    args = parser.parse_args(argv)
    images = sample_images(args.data, 32)

    bare = bare_model(args.model_dir, images, seconds=10)
    work = Path(tempfile.mkdtemp(prefix="binsight-bench-"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    database_url = f"sqlite:///{work / 'bench.db'}"
    env = {**os.environ, "BINSIGHT_PORT": str(port), "BINSIGHT_MODEL_DIR": str(args.model_dir.resolve()),
           "BINSIGHT_DATABASE_URL": database_url, "BINSIGHT_IMAGE_DIR": str(work / "images")}
    key = subprocess.run([sys.executable, "-m", "serve.cli", "create-key", "bench", "--fleet"], env=env, cwd=REPO,
                         capture_output=True, text=True, check=True).stdout.strip()
    service = Service(env, port)
    service.start()
    sequential = asyncio.run(load(port, key, images, 1, min(20.0, args.duration), "SEQ"))
    levels = {c: asyncio.run(load(port, key, images, c, args.duration, f"C{c}")) for c in (4, 16)}
    crash = crash_test(service, key, images, database_url, work / "images")
    service.stop()
    # Same database and key; only the privacy step is switched off.
    service = Service({**env, "BINSIGHT_PRIVACY_BLUR": "false"}, port)
    service.start()
    off_sequential = asyncio.run(load(port, key, images, 1, min(20.0, args.duration), "SEQ-OFF"))
    off_c16 = asyncio.run(load(port, key, images, 16, args.duration, "C16-OFF"))
    service.stop()

    budget = 1.5 * (bare["inference_p50"] + bare["decode_p50"])
    print(f"\nbinsight service benchmark ({os.cpu_count()} cores, images {Image.open(io.BytesIO(images[0])).size})\n")
    print("| measurement | value | target |")
    print("|---|---|---|")
    print(f"| bare onnxruntime inference p50 | {bare['inference_p50'] * 1000:.1f} ms | |")
    print(f"| JPEG decode p50 | {bare['decode_p50'] * 1000:.1f} ms | |")
    print(f"| bare model throughput, one all-cores session | {bare['throughput_sequential']:.1f} img/s | |")
    print(f"| bare model throughput, one 1-thread session per core | {bare['throughput_parallel']:.1f} img/s | |")
    print(f"| endpoint p50, concurrency 1 | {sequential['p50'] * 1000:.1f} ms | <= {budget * 1000:.1f} ms (1.5 x (inference + decode)) |")
    print(f"| endpoint p95 / p99, concurrency 1 | {sequential['p95'] * 1000:.1f} / {sequential['p99'] * 1000:.1f} ms | |")
    for c, r in levels.items():
        share = r["throughput"] / bare["throughput"]
        target = ">= 70 % of bare" if c == 16 else ""
        print(f"| concurrency {c}: throughput | {r['throughput']:.1f} req/s ({share:.0%} of bare) | {target} |")
        print(f"| concurrency {c}: p50 / p95 / p99 | {r['p50'] * 1000:.0f} / {r['p95'] * 1000:.0f} / {r['p99'] * 1000:.0f} ms | |")
        print(f"| concurrency {c}: requests / errors | {r['requests']} / {r['errors']} | 0 errors |")
    print(f"| SIGKILL under load: 2xx answered | {crash['acknowledged']} | |")
    print(f"| ... of them missing in the database / without image | {crash['missing_rows']} / {crash['missing_images']} | 0 / 0 |")
    added = (sequential["p50"] - off_sequential["p50"]) * 1000
    print(f"| privacy off: endpoint p50, concurrency 1 | {off_sequential['p50'] * 1000:.1f} ms (privacy on adds {added:+.1f} ms) | |")
    print(f"| privacy off: concurrency 16 throughput | {off_c16['throughput']:.1f} req/s "
          f"(privacy on: {levels[16]['throughput'] / off_c16['throughput']:.0%} of it) | |")


if __name__ == "__main__":
    main()
