"""One contender's test figures over several training seeds of `bench.realdata`, with mean ± sd; prints one table.

    python -m bench.seed_table bench/results/cpu-50-epochs bench/results/cpu-50-epochs-seed2 ... [--model binsight]

Each argument is a folder holding a `results.json` written by `python -m
bench.realdata` (or that file itself), at least two. The runs must share their
splits (the `splits_sha256` each trainer recorded), their epochs and settings,
and the parameters the contender trained with (its `models/NAME/params.yaml`
under the run's folder, or a `params.yaml` kept beside results.json as in
bench/results/), apart from the seed and the number of loading processes,
or the spread would mix other changes in: a run that breaks this is refused
with its name. The sd is the sample standard deviation (n - 1), the spread a
user should expect from a retrain with another seed on the same machine kind.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import yaml

# Keys that differ between seed runs without changing what is trained: the seed itself, and the loading
# processes (each worker's augmentation stream is seeded per sample, pipeline/augment.py).
SEED_ONLY_KEYS = ("seed", "num_workers", "cuda_num_workers")


class SeedRunMismatch(ValueError):
    pass


def load_run(path: Path, model: str) -> dict:
    file = path / "results.json" if path.is_dir() else path
    try:
        results = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise SeedRunMismatch(f"{file}: not a readable results.json ({err})") from None
    rows = results.get("rows") if isinstance(results, dict) else None
    if not isinstance(rows, dict) or model not in rows:
        raise SeedRunMismatch(f"{file}: no row for {model!r} (rows: {sorted(rows) if isinstance(rows, dict) else 'none'})")
    row = rows[model]
    if "map_50" not in row or not isinstance(row.get("seed"), int):
        raise SeedRunMismatch(f"{file}: {model!r} was not scored, or its seed is not recorded")
    return {"file": str(file), "recipe": recipe_without_seed(file.parent, model), **row}


def recipe_without_seed(folder: Path, model: str) -> dict:
    """The parameters the contender trained with, but for the keys a seed run may change (SEED_ONLY_KEYS of `train`)."""
    for params_file in (folder / "models" / model / "params.yaml", folder / "params.yaml"):
        if params_file.is_file():
            break
    else:
        raise SeedRunMismatch(f"{folder}: no models/{model}/params.yaml nor params.yaml: what it trained with is unknown")
    try:
        raw = yaml.safe_load(params_file.read_text())
        train = raw["train"]
        for key in SEED_ONLY_KEYS:
            train.pop(key, None)
    except (yaml.YAMLError, TypeError, KeyError, AttributeError) as err:
        raise SeedRunMismatch(f"{params_file}: not a binsight parameter file ({type(err).__name__}: {err})") from None
    return raw


def without_nulls(value):
    """A key set to null reads as a key left out: a parameter added later with a null default changes nothing trained.

    Sound while every parameter that accepts null also defaults to null (today model.backbone_weights_sha256;
    model.backbone_weights is always written); a key whose default is not null but accepts null would need listing here.
    """
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    return value


def check_comparable(runs: list[dict]) -> None:
    """Same splits, same epochs, same settings, distinct seeds: otherwise the spread is not a seed spread."""
    first = runs[0]
    for run in runs[1:]:
        for key in ("splits_sha256", "epochs", "settings"):
            if without_nulls(run.get(key)) != without_nulls(first.get(key)):
                raise SeedRunMismatch(f"{run['file']}: {key} differs from {first['file']}'s ({run.get(key)} vs {first.get(key)})")
        if without_nulls(run["recipe"]) != without_nulls(first["recipe"]):
            raise SeedRunMismatch(f"{run['file']}: other binsight parameters than {first['file']} (beyond train.seed)")
    seeds = [run.get("seed") for run in runs]
    if len(set(seeds)) != len(seeds):
        raise SeedRunMismatch(f"seeds repeat: {seeds}")


def mean_sd(values: list[float]) -> str:
    return f"{statistics.fmean(values):.3f} ± {statistics.stdev(values):.3f}"


def table(runs: list[dict]) -> str:
    classes = list(runs[0]["per_class"])
    head = ["seed", "test mAP@.5", "test mAP@[.5:.95]", "verdict P / R @ threshold", "best epoch", *(f"AP@.5 {c}" for c in classes)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for run in runs:
        verdict = run["verdict"]
        lines.append("| " + " | ".join([
            str(run["seed"]), f"{run['map_50']:.3f}", f"{run['map']:.3f}",
            f"{verdict['precision']:.3f} / {verdict['recall']:.3f} @ {verdict['threshold']:.3f}", str(run["best_epoch"]),
            *(f"{run['per_class'][c]['ap_50']:.3f}" for c in classes)]) + " |")
    lines.append("| " + " | ".join([
        f"mean ± sd ({len(runs)} seeds)", mean_sd([r["map_50"] for r in runs]), mean_sd([r["map"] for r in runs]), "", "",
        *(mean_sd([r["per_class"][c]["ap_50"] for r in runs]) for c in classes)]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="bench.realdata output folders (or their results.json)")
    parser.add_argument("--model", default="binsight", help="the contender to tabulate")
    args = parser.parse_args(argv)
    if len(args.runs) < 2:
        parser.error("a spread needs at least two runs")
    try:
        runs = [load_run(path, args.model) for path in args.runs]
        check_comparable(runs)
    except SeedRunMismatch as err:
        parser.exit(2, f"bench.seed_table: error: {err}\n")
    print(table(sorted(runs, key=lambda r: r["seed"])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
