"""ONNX CPU latency of binsight's trained model beside the YOLO architectures, in one run.

    .venv-bench/bin/python -m bench.onnx_latency --root build/bench-cpu50 [--yolo yolo11n,yolo26n]

The goal of issue 8 compares latencies, and latencies on a shared 2-core VM
are only comparable within one run. When binsight was trained in one
session and the YOLOs in another (or on a GPU machine whose weights did not
come back), this puts them side by side again: binsight's ONNX as the
benchmark exported it under `--root`, and each YOLO built here from its
model YAML for the dataset's classes (Ultralytics, offline, random weights)
and exported as bench/yolo_contender.py exports a trained one.

Why random YOLO weights time like trained ones: every tensor in a YOLO
export has a fixed shape (its NMS runs outside, in the adapter; YOLO26's
one-to-one head takes a fixed top 300), so `session.run` does the same
operations on the same amounts of data whatever the weights. Two things
could still tell the weights apart: tiny (subnormal) floats, which x86
computes slowly and random weights could produce deep in the network, so
every model here runs with them flushed to zero; and the adapter's NMS
outside the graph, which sees few boxes from random weights, so the
"with pre/post" column is a lower bound for the YOLO rows. binsight's
graph holds its NMS, so its model must be the trained one (`--root`).

Timing as `make bench-realdata` does it (bench/realdata.py): onnxruntime CPU,
batch 1, 2 intra-op threads, the first test image, models in turn.
"""

from __future__ import annotations

from bench.no_network import forbid_network, quiet_update_checks

quiet_update_checks()

import argparse  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402

import yaml  # noqa: E402

from bench.onnx_detectors import BinsightOnnx, OnnxDetector, YoloOnnx, cpu_session, latencies  # noqa: E402
from bench.realdata import LATENCY_ROUNDS, LATENCY_RUNS, LATENCY_THREADS, LATENCY_WARMUP  # noqa: E402
from bench.realdata_data import class_names, data_dir, splits_dir  # noqa: E402
from bench.realdata_train import DEFAULT_BINSIGHT_PARAMS, IMAGE_SIZE, YOLO_MODELS, machine, model_dir  # noqa: E402
from pipeline.coco import IMAGES_DIR, load_coco  # noqa: E402
from pipeline.config import load_params  # noqa: E402
from pipeline.imageio import read_rgb  # noqa: E402


def export_architecture(name: str, num_classes: int, folder: Path) -> dict[str, Path]:
    """Row name -> ONNX file of a YOLO built from its model YAML for `num_classes` classes, random weights."""
    from bench.yolo_contender import export_onnx, offline_ultralytics

    folder.mkdir(parents=True, exist_ok=True)
    offline_ultralytics(folder / "ultralytics-config")
    from ultralytics import YOLO
    from ultralytics.nn.tasks import yaml_model_load

    # The YAML says 80 classes (COCO); training on a dataset rebuilds the head for its classes, as here.
    config = yaml_model_load(f"{name}.yaml")  # Ultralytics' own copy, with the scale its file name gives ("n")
    config["nc"] = num_classes
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(config))
    model = YOLO(str(folder / f"{name}.yaml"))
    plain, end2end = export_onnx(model, folder, name, IMAGE_SIZE)
    return {name: plain} | ({f"{name} NMS-free head": end2end} if end2end else {})


def trained_binsight(root: Path) -> tuple[dict, Path]:
    record = model_dir(root, "binsight") / "trained.json"
    trained = json.loads(record.read_text()) if record.is_file() else {}
    if not trained.get("onnx"):
        raise SystemExit(f"no exported binsight model in {record.parent}: train and export it first "
                         f"(python -m bench.realdata --models binsight --out {root}, or --score-only after a GPU run)")
    return trained, model_dir(root, "binsight") / trained["onnx"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True, help="a bench-realdata output folder with binsight trained and exported")
    parser.add_argument("--yolo", default=",".join(YOLO_MODELS), help="YOLO architectures to build from their YAML and time")
    parser.add_argument("--params", type=Path, default=DEFAULT_BINSIGHT_PARAMS, help="binsight's parameter file (its score floor)")
    args = parser.parse_args(argv)
    yolos = [m.strip() for m in args.yolo.split(",") if m.strip()]
    if unknown := sorted(set(yolos) - set(YOLO_MODELS)):
        parser.error(f"unknown YOLO models {unknown}; choose from {', '.join(YOLO_MODELS)}")
    trained, binsight_onnx = trained_binsight(args.root)
    forbid_network()

    num_classes = len(class_names())
    deploy_confidence = load_params(args.params).model.box_score_thresh  # every timed model's floor, as bench/realdata.py
    timed: dict[str, OnnxDetector] = {"binsight": BinsightOnnx(binsight_onnx, threads=LATENCY_THREADS)}
    for name in yolos:
        for row, path in export_architecture(name, num_classes, args.root / "latency" / name).items():
            timed[row] = YoloOnnx(path, num_classes, conf=deploy_confidence, threads=LATENCY_THREADS)
    for detector in timed.values():
        detector.session = cpu_session(detector.path, LATENCY_THREADS, denormals_as_zero=True)
    first = load_coco(splits_dir(args.root) / "test.json")["images"][0]
    sample = read_rgb(data_dir(args.root) / IMAGES_DIR / first["file_name"])
    figures = latencies(timed, sample, LATENCY_WARMUP, LATENCY_ROUNDS, LATENCY_RUNS)

    print(f"\n{machine()}; onnxruntime CPU, batch 1, {LATENCY_THREADS} threads, subnormals flushed, "
          f"p50 of {LATENCY_ROUNDS} x {LATENCY_RUNS} runs per model, in turn")
    print("| model | weights | ONNX CPU p50 (session.run) | p50 with pre/post | ONNX size |\n|---|---|---|---|---|")
    for row, f in figures.items():
        weights = f"trained, {trained.get('epochs', '?')} epochs" if row == "binsight" else "random (architecture only)"
        post = f"{f['predict_p50_ms']:.1f} ms" + ("" if row == "binsight" else " (lower bound)")
        print(f"| {row} | {weights} | {f['session_run_p50_ms']:.1f} ms | {post} | {timed[row].path.stat().st_size / 1e6:.1f} MB |")
    (args.root / "latency" / "latency.json").write_text(json.dumps({"machine": machine(), "rows": figures}, indent=1) + "\n")


if __name__ == "__main__":
    main()
