#!/bin/bash
# The seed spread of the committed default recipe: train and evaluate it again with other `train.seed`s, on the data
# and split of a finished default `make run` (data/, build/splits), with train.cpu_numerics native (about 12 min a
# seed on 2 idle cores instead of 25; the spread is what another machine's rounding gives too). Each seed writes
# build/seeds/seedN/{params.yaml,train/,reports/metrics.json,*.log}; its MLflow runs go to build/seeds/seedN/mlflow.db,
# not the project's store (their artifacts stay under MLflow's default ./mlruns). The committed run is seed 1.
#   usage: bash bench/seed_spread.sh 2 3          (BENCHMARKS.md, Reproducibility: Across seeds)
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || { echo "usage: bash bench/seed_spread.sh SEED..." >&2; exit 2; }
[ -f build/splits/train.json ] || { echo "no build/splits/train.json: run make run first" >&2; exit 2; }
PY=${PY:-.venv/bin/python}

run_logged() {  # LOG COMMAND...: the command's output into LOG; on failure, its tail and a line naming it
  local log=$1
  shift
  "$@" > "$log" 2>&1 || { tail -n 20 "$log" >&2; echo "failed: $* (log: $log)" >&2; exit 1; }
}

for SEED in "$@"; do
  OUT=build/seeds/seed$SEED
  mkdir -p "$OUT"
  "$PY" - "$SEED" "$OUT/params.yaml" <<'PARAMS'
import sys, yaml
raw = yaml.safe_load(open("configs/params.yaml"))
raw["train"].update(seed=int(sys.argv[1]), cpu_numerics="native")
yaml.safe_dump(raw, open(sys.argv[2], "w"), sort_keys=False)
PARAMS
  export MLFLOW_TRACKING_URI="sqlite:///$PWD/$OUT/mlflow.db"
  # No skipping when a model is there: the train stage's checkpoint resumes or retrains as its fingerprint says.
  run_logged "$OUT/train.log" "$PY" -m pipeline.train --splits build/splits --data data --out "$OUT/train" \
    --metrics "$OUT/train.json" --params "$OUT/params.yaml" --classes configs/classes.yaml
  run_logged "$OUT/evaluate.log" "$PY" -m pipeline.evaluate --model "$OUT/train/model.pt" --splits build/splits --data data \
    --out "$OUT/reports" --params "$OUT/params.yaml" --classes configs/classes.yaml
  "$PY" -c "import json, sys; m = json.load(open(sys.argv[1])); v = m['verdict']
print(f\"seed {sys.argv[2]}: test mAP@.5 {m['map_50']:.3f} mAP {m['map']:.3f} threshold {v['threshold']:.3f} \"
      f\"P/R/F1 {v['precision']:.3f}/{v['recall']:.3f}/{v['f1']:.3f} gated {m['gated']['count']}\")" "$OUT/reports/metrics.json" "$SEED"
done
