"""ONNX CPU latency of binsight's trained model beside the YOLO architectures, in one run.

    .venv-bench/bin/python -m bench.onnx_latency --root build/bench-cpu50 [--yolo yolo11n,yolo26n]

The goal of issue 8 compares latencies, and latencies on a shared 2-core VM
are only comparable within one run. When binsight was trained in one
session and the YOLOs in another (or on a GPU machine whose weights did not
come back), this puts them side by side again: binsight's ONNX as the
benchmark exported it under `--root`, and each YOLO exported here from its
model YAML (Ultralytics, offline, architecture only).

Why untrained YOLO weights time the same as trained ones: a YOLO export has
no data-dependent step in its graph (its NMS runs outside, in the adapter;
YOLO26's one-to-one head takes a fixed top-300), so `session.run` does the
same arithmetic whatever the weights. The "with pre/post" column is not
like that: the adapter's NMS sees few boxes from random weights, so for the
YOLO rows it is a lower bound. binsight's graph holds its NMS, so its model
must be the trained one (`--root`).

Timing as `make bench-realdata` does it (bench/realdata.py): onnxruntime CPU,
batch 1, 2 intra-op threads, the first test image, models in turn.
"""

from __future__ import annotations

from bench.no_network import forbid_network, quiet_update_checks

quiet_update_checks()

import argparse  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402

from bench.onnx_detectors import BinsightOnnx, OnnxDetector, YoloOnnx, latencies  # noqa: E402
from bench.realdata import LATENCY_ROUNDS, LATENCY_RUNS, LATENCY_THREADS, LATENCY_WARMUP  # noqa: E402
from bench.realdata_data import class_names, data_dir, splits_dir  # noqa: E402
from bench.realdata_train import IMAGE_SIZE, YOLO_MODELS, machine, model_dir  # noqa: E402
from pipeline.coco import IMAGES_DIR, load_coco  # noqa: E402
from pipeline.imageio import read_rgb  # noqa: E402

DEPLOY_CONFIDENCE = 0.05  # the YOLO adapters' floor when timed, as binsight's recipe (model.box_score_thresh)


def export_architecture(name: str, folder: Path) -> dict[str, Path]:
    """ONNX files of a YOLO built from its model YAML (random weights): the plain head and, for YOLO26, the NMS-free one."""
    from bench.yolo_contender import offline_ultralytics

    folder.mkdir(parents=True, exist_ok=True)
    offline_ultralytics(folder / "ultralytics-config")
    from ultralytics import YOLO

    model = YOLO(f"{name}.yaml")
    files = {name: Path(model.export(format="onnx", imgsz=IMAGE_SIZE, batch=1, device="cpu")).rename(folder / f"{name}.onnx")}
    if getattr(model.model.model[-1], "one2one_cv2", None) is not None:
        end2end = model.export(format="onnx", imgsz=IMAGE_SIZE, batch=1, device="cpu", nms=False)
        files[f"{name} NMS-free head"] = Path(end2end).rename(folder / f"{name}-end2end.onnx")
    return files


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True, help="a bench-realdata output folder with binsight trained and exported")
    parser.add_argument("--yolo", default=",".join(YOLO_MODELS), help="YOLO architectures to export from their YAML and time")
    args = parser.parse_args(argv)
    yolos = [m.strip() for m in args.yolo.split(",") if m.strip()]
    if unknown := sorted(set(yolos) - set(YOLO_MODELS)):
        parser.error(f"unknown YOLO models {unknown}; choose from {', '.join(YOLO_MODELS)}")
    record = model_dir(args.root, "binsight") / "trained.json"
    if not record.is_file():
        raise SystemExit(f"no {record}: train and export binsight first (python -m bench.realdata --models binsight --out {args.root})")
    trained = json.loads(record.read_text())
    forbid_network()

    num_classes = len(class_names())
    timed: dict[str, OnnxDetector] = {"binsight": BinsightOnnx(model_dir(args.root, "binsight") / trained["onnx"], threads=LATENCY_THREADS)}
    for name in yolos:
        for row, path in export_architecture(name, args.root / "latency" / name).items():
            timed[row] = YoloOnnx(path, num_classes, conf=DEPLOY_CONFIDENCE, threads=LATENCY_THREADS)
    first = load_coco(splits_dir(args.root) / "test.json")["images"][0]
    sample = read_rgb(data_dir(args.root) / IMAGES_DIR / first["file_name"])
    figures = latencies(timed, sample, LATENCY_WARMUP, LATENCY_ROUNDS, LATENCY_RUNS)

    print(f"\n{machine()}; onnxruntime CPU, batch 1, {LATENCY_THREADS} threads, p50 of {LATENCY_ROUNDS} x {LATENCY_RUNS} runs per model, in turn")
    print("| model | weights | ONNX CPU p50 (session.run) | p50 with pre/post | ONNX size |\n|---|---|---|---|---|")
    for row, f in figures.items():
        weights = f"trained, {trained.get('epochs', '?')} epochs" if row == "binsight" else "architecture only (random)"
        post = f"{f['predict_p50_ms']:.1f} ms" + ("" if row == "binsight" else " (lower bound)")
        print(f"| {row} | {weights} | {f['session_run_p50_ms']:.1f} ms | {post} | {timed[row].path.stat().st_size / 1e6:.1f} MB |")
    (args.root / "latency" / "latency.json").parent.mkdir(parents=True, exist_ok=True)
    (args.root / "latency" / "latency.json").write_text(json.dumps({"machine": machine(), "rows": figures}, indent=1) + "\n")


if __name__ == "__main__":
    main()
