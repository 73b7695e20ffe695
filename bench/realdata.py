"""`make bench-realdata`: binsight against Ultralytics YOLO on real photos, same data, same evaluation.

    python -m bench.realdata --epochs 2 --models yolo11n,yolo26n,binsight,binsight-imagenet \\
        --out build/bench-realdata [--limit K]

1. TrashNet++ (../shared/data/trashnetpp) is imported and split as the
   trashnetpp recipe does it, by the same code (bench/realdata_data.py:
   importer, prepare stage): test = its `valid` split, val = 15 % of its
   `train` by the recipe's seed, train = the rest; plus a YOLO view of those
   splits for Ultralytics.
2. Each contender trains on the same train images for the same epochs at
   320 px, selects its weights on the same val images, and is exported to ONNX,
   each in its own process (bench/realdata_train.py): yolo11n and yolo26n from
   their model YAMLs (no hub weights offline), binsight's default recipe from
   scratch, and binsight with the local ImageNet MobileNetV2 backbone.
3. Every ONNX model is run through one adapter interface
   (bench/onnx_detectors.py) and scored by the evaluate stage's own code
   (bench/realdata_score.py) on the test split: COCO mAP (pycocotools), the
   service's verdict path (quality gate, policy, threshold chosen on val),
   ONNX Runtime CPU latency (batch 1, 2 threads), parameters, file size.

Prints one markdown table and writes <out>/results.json. The trainers use
CUDA when there is one (binsight through its recipe's `train.device: auto`;
Ultralytics on device 0, as bench/realdata_train.py picks it), the CPU
otherwise.
`--limit K` keeps K images per split, for smoke runs only.
"""

from __future__ import annotations

from bench.no_network import ATTEMPTS, forbid_network, quiet_update_checks

quiet_update_checks()  # before the imports below bring in albumentations and MLflow

import argparse  # noqa: E402
import datetime  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402


from bench.onnx_detectors import BinsightOnnx, OnnxDetector, YoloOnnx, latencies  # noqa: E402
from bench.realdata_data import DEFAULT_SOURCE, build_dataset, data_dir, recipe_taxonomy, split_digest, splits_dir  # noqa: E402
from bench.realdata_score import score  # noqa: E402
from bench.realdata_train import DEFAULT_BACKBONE_WEIGHTS, DEFAULT_BINSIGHT_PARAMS, MODELS, YOLO_MODELS, machine, model_dir  # noqa: E402
from pipeline.coco import IMAGES_DIR, load_coco  # noqa: E402
from pipeline.config import load_params  # noqa: E402
from pipeline.imageio import read_rgb  # noqa: E402

LATENCY_THREADS = 2
MAP_CONFIDENCE = 0.001  # YOLO adapters' lowest score kept for mAP, as Ultralytics' validation
# Latency rounds: every model in turn, so that load from other work on the machine falls on all alike.
LATENCY_WARMUP, LATENCY_ROUNDS, LATENCY_RUNS = 10, 5, 20


def load_trained(name: str, out: Path) -> dict:
    """A contender's trained.json, or an error row saying why there is none."""
    record = model_dir(out, name) / "trained.json"
    if not record.is_file():
        return {"error": f"no {record}: not trained, stopped before its end, or not copied back"}
    return json.loads(record.read_text())


def check_splits(trained: dict[str, dict], out: Path) -> None:
    """Refuse to score a model trained on other splits than those scored here (it may have trained on test photos)."""
    here = split_digest(out)
    for name, t in trained.items():
        if "error" in t:
            continue
        if "splits_sha256" not in t:
            print(f"WARNING {name}: its trained.json records no splits digest (trained before the bench recorded one); "
                  "its splits cannot be checked", flush=True)
        elif t["splits_sha256"] != here:
            raise SystemExit(
                f"{name} was trained on other splits than those built here from the source under {out}: scoring "
                "would test on photos its training saw. Same source, recipe and code on both machines?"
            )


def train_command(name: str, out: Path, stage: str, args: argparse.Namespace, concurrent: bool = False) -> list[str]:
    cmd = [sys.executable, "-m", "bench.realdata_train", name, "--root", str(out), "--stage", stage]
    if concurrent:
        cmd.append("--concurrent")
    if stage != "export":
        cmd += ["--epochs", str(args.epochs), "--seed", str(args.seed), "--backbone-weights", str(args.backbone_weights),
                "--params", str(args.params), *(f"--set={s}" for s in args.set)]  # fmt: skip
        if args.workers is not None:
            cmd += ["--workers", str(args.workers)]
        if args.resume:
            cmd.append("--resume")
    return cmd


def outcome(name: str, out: Path, rc: int, started: float, log: Path | None = None) -> dict:
    trained = model_dir(out, name) / "trained.json"
    if rc != 0 or not trained.exists():
        where = f"see {log}" if log else "see the log above"
        return {"error": f"training/export failed (exit {rc}); {where}", "wall_seconds": time.monotonic() - started}
    return json.loads(trained.read_text())


def run_stage(name: str, out: Path, stage: str, args: argparse.Namespace) -> dict:
    """One contender's stage in a process of its own, its output on this terminal; its trained.json or an error row."""
    started = time.monotonic()
    rc = subprocess.run(train_command(name, out, stage, args)).returncode
    return outcome(name, out, rc, started)


def train(name: str, out: Path, stage: str, args: argparse.Namespace) -> dict:
    print(f"\n=== {name}: {stage} ({args.epochs} epochs) ===", flush=True)
    return run_stage(name, out, stage, args)


def train_concurrently(models: list[str], out: Path, stage: str, args: argparse.Namespace) -> dict[str, dict]:
    """Every contender at once, each logging to <out>/logs/<name>.log: for a GPU machine, where one
    small model leaves the card and most cores idle. Wall times then include the sharing (each trained.json
    says so). Interrupted (Ctrl-C, or `timeout -s INT`), it stops the trainings and returns what finished."""
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    running: dict[str, tuple[subprocess.Popen, Path]] = {}
    for name in models:
        log = logs / f"{name}.log"
        print(f"=== {name}: {stage} ({args.epochs} epochs), log {log} ===", flush=True)
        with log.open("a" if args.resume else "w") as f:  # a resumed training's log goes on from the cut
            running[name] = (subprocess.Popen(train_command(name, out, stage, args, concurrent=True), stdout=f, stderr=subprocess.STDOUT), log)
    results: dict[str, dict] = {}
    try:
        while len(results) < len(running):
            for name, (process, log) in running.items():
                if name in results or process.poll() is None:
                    continue
                print(f"{name}: exit {process.returncode} after {(time.monotonic() - started) / 60:.1f} min", flush=True)
                if process.returncode != 0:
                    print("".join(log.read_text(errors="replace").splitlines(keepends=True)[-30:]), flush=True)
                results[name] = outcome(name, out, process.returncode, started, log)
            time.sleep(1)
    except KeyboardInterrupt:
        for name, (process, log) in running.items():
            if name not in results:
                process.terminate()
                process.wait(timeout=30)
                results[name] = {"error": f"stopped after {(time.monotonic() - started) / 60:.1f} min, unfinished; see {log}"}
                print(f"{name}: stopped unfinished", flush=True)
    return {name: results[name] for name in models}


def export_where_missing(name: str, out: Path, trained: dict, args: argparse.Namespace) -> dict:
    """A contender trained elsewhere (`--stage train` on a GPU machine) is exported here before scoring."""
    onnx = [trained.get(k) for k in ("onnx", "onnx_map", "onnx_end2end") if trained.get(k)]
    if "error" in trained or (onnx and all((model_dir(out, name) / f).is_file() for f in onnx)):
        return trained
    where = "the CPU" if trained.get("device", "cpu") == "cpu" else "a GPU"
    print(f"exporting {name} (trained on {where}) ...", flush=True)
    return run_stage(name, out, "export", args)


def table_rows(name: str, trained: dict, folder: Path) -> dict[str, tuple[Path, Path]]:
    """Row name -> (ONNX scored for mAP, ONNX timed) for one trained contender.

    File names in `trained` are relative to the contender's `folder`.
    binsight: its low-threshold export is scored and its export as configured
    is timed. YOLO: one file for both (NMS and thresholds live in the adapter);
    YOLO26 gets a second row for its NMS-free head.
    """
    if name in YOLO_MODELS:
        rows = {name: (folder / trained["onnx"],) * 2}
        if trained.get("onnx_end2end"):
            rows[f"{name} NMS-free head"] = (folder / trained["onnx_end2end"],) * 2
        return rows
    return {name: (folder / trained["onnx_map"], folder / trained["onnx"])}


def detector(yolo: bool, onnx: Path, num_classes: int, confidence: float) -> OnnxDetector:
    if yolo:
        return YoloOnnx(onnx, num_classes, conf=confidence, threads=LATENCY_THREADS)
    return BinsightOnnx(onnx, threads=LATENCY_THREADS)


def threshold_note(verdict: dict) -> str:
    """What the table must say when the threshold is not one chosen for the target precision on val."""
    if verdict.get("threshold_mode") != "target_precision" or verdict["target_reached"] is True:
        return ""
    if verdict["target_reached"] is False:
        return f" (P >= {verdict['target_precision']} not reached on val)"
    return " (verdict.threshold: val gives no basis for a precision)"  # None: too few clean bins, or none flagged


def fmt_row(name: str, r: dict) -> str:
    if "error" in r:
        return f"| {name} | {r['error']} |" + " |" * 7
    v, lat = r["verdict"], r["latency"]
    verdict = f"{v['precision']:.3f} / {v['recall']:.3f} @ {v['threshold']:.3f}, {r['gated']['count']} gated" + threshold_note(v)
    return (
        f"| {name} | {r['map_50']:.3f} | {r['map']:.3f} | {verdict} | {r['train_seconds'] / 60:.1f} min "
        f"{'on the GPU ' if r.get('device', 'cpu') != 'cpu' else ''}(best epoch {r['best_epoch']}) | {lat['session_run_p50_ms']:.1f} ms | {lat['predict_p50_ms']:.1f} ms | "
        f"{r['parameters'] / 1e6:.2f} M | {r['onnx_bytes'] / 1e6:.1f} MB |"
    )


def table(results: dict, epochs: int) -> str:
    lines = [
        f"| model ({epochs} epochs) | mAP@.5 | mAP@[.5:.95] | verdict P / R @ threshold, gated | training (wall) | "
        "ONNX CPU p50 (session.run) | p50 with pre/post | parameters | ONNX size |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [fmt_row(name, r) for name, r in results.items()]
    return "\n".join(lines)


def goal(results: dict) -> str | None:
    """Does binsight's default recipe match the better YOLO in mAP@.5 at no higher ONNX latency?"""
    yolos = [(n, r) for n, r in results.items() if r.get("contender") in YOLO_MODELS and "error" not in r]
    ours = results.get("binsight")
    if not yolos or not ours or "error" in ours:
        return None
    best_name, best = max(yolos, key=lambda item: item[1]["map_50"])
    accurate = ours["map_50"] >= best["map_50"]
    fast = ours["latency"]["session_run_p50_ms"] <= best["latency"]["session_run_p50_ms"]
    verdict = "met" if accurate and fast else "NOT met"
    return (
        f"Goal {verdict}: binsight mAP@.5 {ours['map_50']:.3f} vs {best_name} {best['map_50']:.3f} "
        f"({'>=' if accurate else '<'}); ONNX p50 {ours['latency']['session_run_p50_ms']:.1f} ms vs "
        f"{best['latency']['session_run_p50_ms']:.1f} ms ({'<=' if fast else '>'})."
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=2, help="epochs for every contender (default 2: all four contenders in about 40 min on 2 CPU cores, 38.4 in session 13)")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, from {', '.join(MODELS)}")
    parser.add_argument("--out", type=Path, default=Path("build/bench-realdata"))
    parser.add_argument("--limit", type=int, default=None, help="keep K images per split (smoke runs only)")
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="TrashNet++ folder (train/ and valid/)")
    parser.add_argument("--backbone-weights", type=Path, default=DEFAULT_BACKBONE_WEIGHTS, help="ImageNet MobileNetV2 state_dict")
    parser.add_argument("--seed", type=int, default=1, help="training seed of every contender")
    parser.add_argument("--params", type=Path, default=DEFAULT_BINSIGHT_PARAMS, help="binsight's parameter file (its recipe)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a binsight parameter (tuning experiments), e.g. --set train.lr=0.004; repeatable")
    parser.add_argument("--score-only", action="store_true",
                        help="score the models already trained under --out (here, or on another machine with --stage train "
                             "and copied back): exports those without ONNX, builds the dataset views if missing")
    parser.add_argument("--stage", choices=("all", "train"), default="all",
                        help="train: build the views and train every contender, no export or scoring (a GPU machine's part)")
    parser.add_argument("--concurrent", action="store_true", help="train every contender at once (a GPU machine with many cores)")
    parser.add_argument("--workers", type=int, default=None, help="data-loading processes per contender (default: each trainer's own)")
    parser.add_argument("--resume", action="store_true",
                        help="binsight's contenders only: go on with trainings a time limit cut off under --out, from their "
                             "checkpoints (a second GPU call on the same machine); the wall time is the sum of the parts")
    args = parser.parse_args(argv)

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(models) - set(MODELS))
    if unknown or not models:
        parser.error(f"unknown models {unknown}; choose from {', '.join(MODELS)}")
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")
    if args.score_only and (args.stage == "train" or args.concurrent):
        parser.error("--score-only trains nothing: leave out --stage train and --concurrent")
    if args.resume and (args.score_only or any(m in YOLO_MODELS for m in models)):
        parser.error("--resume goes on with binsight's trainings only: leave out --score-only and the YOLO models "
                     "(--models binsight,binsight-imagenet)")
    if any(m in YOLO_MODELS for m in models) and importlib.util.find_spec("ultralytics") is None:
        raise SystemExit(
            "Ultralytics is not installed in this Python. It lives only in .venv-bench: run `make bench-realdata`, "
            "or `.venv-bench/bin/python -m bench.realdata ...`; or leave out the YOLO models with --models."
        )
    forbid_network()

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    report = {
        "command": " ".join(["python -m bench.realdata", *(argv if argv is not None else sys.argv[1:])]),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine(),
        "epochs": args.epochs,
        "binsight_params": str(args.params),
        "binsight_overrides": args.set,
        "latency": (
            f"onnxruntime CPU, batch 1, intra_op_num_threads={LATENCY_THREADS}, one test image; p50 of "
            f"{LATENCY_ROUNDS} x {LATENCY_RUNS} runs per model, models in turn, after {LATENCY_WARMUP} warm-up runs"
        ),
        "rows": {},
    }
    # Scoring builds the views anew from --source (also for models trained on another machine, whose folder
    # brings back their splits but not the photos); check_splits then compares them with each model's record.
    report["data"] = build_dataset(args.source, out, args.limit)
    print(f"splits: {report['data']['images']} images, {report['data']['boxes']} boxes", flush=True)
    num_classes = len(report["data"]["classes"])
    params = load_params(args.params)
    deploy_confidence = params.model.box_score_thresh  # binsight's configured floor, for every timed model

    if args.score_only:
        trained = {name: load_trained(name, out) for name in models}
        check_splits(trained, out)
        trained = {name: export_where_missing(name, out, t, args) for name, t in trained.items()}
    elif args.concurrent:
        trained = train_concurrently(models, out, args.stage, args)
    else:
        trained = {name: train(name, out, args.stage, args) for name in models}
    report["trained_concurrently"] = any(t.get("trained_concurrently") for t in trained.values())
    trained_epochs = {t.get("epochs") for t in trained.values() if "error" not in t}
    if args.score_only and len(trained_epochs) == 1:
        report["epochs"] = trained_epochs.pop()  # as trained, whatever --epochs says now
    trained_on = {t["machine"] for t in trained.values() if t.get("machine")}
    if trained_on:
        report["trained_on"] = sorted(trained_on)
    if args.stage == "train":
        report["rows"] = trained
        (out / "results.json").write_text(json.dumps(report, indent=1) + "\n")
        print(json.dumps({n: {k: t.get(k) for k in ("error", "train_seconds", "best_epoch", "val_map_50", "device")} for n, t in trained.items()}, indent=1))
        if any("error" in t for t in trained.values()):
            raise SystemExit("some contenders failed to train; see their logs")
        return

    taxonomy = recipe_taxonomy()
    timed: dict[str, OnnxDetector] = {}
    for name in models:
        if "error" in trained[name]:
            report["rows"][name] = dict(trained[name])
            continue
        yolo = name in YOLO_MODELS
        for row, (scored, timed_onnx) in table_rows(name, trained[name], model_dir(out, name)).items():
            print(f"scoring {row} ...", flush=True)
            result = {**trained[name], "contender": name, "onnx_scored": str(scored), "onnx_timed": str(timed_onnx)}
            result.update(score(detector(yolo, scored, num_classes, MAP_CONFIDENCE), splits_dir(out), data_dir(out), params, taxonomy))
            result["onnx_bytes"] = timed_onnx.stat().st_size
            report["rows"][row] = result
            timed[row] = detector(yolo, timed_onnx, num_classes, deploy_confidence)
            (out / "results.json").write_text(json.dumps(report, indent=1) + "\n")
    print("timing ...", flush=True)
    first = load_coco(splits_dir(out) / "test.json")["images"][0]
    sample = read_rgb(data_dir(out) / IMAGES_DIR / first["file_name"])
    for row, figures in latencies(timed, sample, LATENCY_WARMUP, LATENCY_ROUNDS, LATENCY_RUNS).items():
        report["rows"][row]["latency"] = {**figures, "score_threshold": deploy_confidence}
    report["network_refused_while_scoring"] = list(ATTEMPTS)
    (out / "results.json").write_text(json.dumps(report, indent=1) + "\n")

    print(f"\n{report['machine']}; {report['latency']}")
    if report.get("trained_on"):
        print(f"trained on: {'; '.join(report['trained_on'])}" + (" (contenders concurrently)" if report.get("trained_concurrently") else ""))
    print(f"data: {report['data']['images']} images (test = TrashNet++ valid); {report['epochs']} epochs each\n")
    print(table(report["rows"], report["epochs"]))
    summary = goal(report["rows"])
    if summary:
        print(f"\n{summary}")
    refused = {n: r["network_attempts"] for n, r in report["rows"].items() if r.get("network_attempts")}
    print(f"network access refused: training {refused or 'none'}, scoring {ATTEMPTS or 'none'}")
    if any("error" in r for r in report["rows"].values()):
        raise SystemExit("some contenders failed; see the table")


if __name__ == "__main__":
    main()
