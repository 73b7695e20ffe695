#!/usr/bin/env bash
# `make bench-realdata` on a rented GPU machine: the training half.
#
#   make bench-realdata-pack                     # here, once: .devdata/ (data and weights that travel)
#   (on the GPU machine, in the checkout, with .devdata and .whl carried)
#   OUT=<folder to bring back> EPOCHS=50 bash bench/device_realdata.sh
#   (optional: MODELS=binsight,binsight-imagenet to train some contenders only, SET="train.lr=0.001 ..." to
#   override binsight's recipe, LIMIT=K images per split for a rehearsal)
#   (a training longer than one call, e.g. 50 epochs of binsight on one H100, about 10 minutes: run the same
#   command again at once with RESUME=1 and binsight's MODELS only; the machine, still warm, kept build/ and
#   the trainings go on from their checkpoints)
#   (back here) cat <OUT>/trained.tgz.part-* | tar xzf - -C build && make bench-realdata-score
#
# The machine has torch and onnxruntime but no package index: the other
# packages travel as wheels in .whl/ (`make bench-device-wheels` fetches them;
# bench/device_wheels.py lists them) and are installed into /tmp/site. MLflow
# and polars do not travel (bench/tracking_standin.py and
# bench/yolo_contender.py stand in for them).
# Every contender trains at once (--concurrent), the card and 16 cores being
# far more than one small model uses; TRAIN_SECONDS bounds the whole. What
# finished by then comes back with its selected weights; what did not, with
# its log and per-epoch figures only (optimiser checkpoints are too large).
set -u
PY=${PY:-python3}
EPOCHS=${EPOCHS:-50}
TRAIN_SECONDS=${TRAIN_SECONDS:-480}
WORKERS=${WORKERS:-3}
ROOT=${ROOT:-build/bench-gpu}
OUT=${OUT:?set OUT to the folder that comes back}
LIMIT=${LIMIT:+--limit $LIMIT}
MODELS=${MODELS:+--models $MODELS}  # e.g. MODELS=binsight,binsight-imagenet (default: all four)
case "${RESUME:-0}" in  # RESUME=1: go on with binsight's trainings that an earlier call's time limit cut off
  1) RESUME=--resume ;;
  0) RESUME= ;;
  *) echo "RESUME must be 1 or 0, not '$RESUME'" >&2; exit 2 ;;
esac
SETS=()  # SET="train.cpu_numerics=native augment.mosaic_probability=0": binsight overrides, space-separated
read -ra assignments <<< "${SET:-}"  # split on spaces only: no glob expansion of [ ] in values
for assignment in ${assignments[@]+"${assignments[@]}"}; do SETS+=(--set "$assignment"); done
mkdir -p "$OUT"
exec > >(tee "$OUT/run.log") 2>&1
started=$(date +%s)

if [ -d .whl ] && [ -z "${NO_WHEELS:-}" ]; then  # NO_WHEELS=1: a rehearsal where the packages are installed
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" - <<'PY' || exit 1
import hashlib, lzma, pathlib
packed = pathlib.Path(".devdata/mobilenet_v2_imagenet.pth.xz")
data = lzma.decompress(packed.read_bytes())
expected = pathlib.Path(".devdata/mobilenet_v2_imagenet.pth.sha256").read_text().strip()
assert hashlib.sha256(data).hexdigest() == expected, "weights differ after unpacking"
packed.with_suffix("").write_bytes(data)
print("weights unpacked, sha256 as packed")
PY
echo "setup took $(( $(date +%s) - started )) s"

timeout --signal=INT --kill-after=20 "$TRAIN_SECONDS" "$PY" -m bench.realdata --stage train --concurrent \
  --epochs "$EPOCHS" --workers "$WORKERS" --source .devdata/trashnetpp \
  --backbone-weights .devdata/mobilenet_v2_imagenet.pth --out "$ROOT" $LIMIT $MODELS $RESUME ${SETS[@]+"${SETS[@]}"}
rc=$?
echo "training exit $rc after $(( $(date +%s) - started )) s"
pkill -INT -f bench.realdata_train && sleep 5; pkill -KILL -f bench.realdata_train  # anything a timeout left
nvidia-smi --query-gpu=memory.used --format=csv,noheader || true

# What comes back: the selected weights (best.pt, model.pt), every log and per-epoch table, the splits
# as trained; in parts of 15 MiB (the device tool returns files of at most 16 MiB). Optimiser checkpoints
# stay: a cut-off run is told by its logs and per-epoch tables.
name=$(basename "$ROOT")
cd "$ROOT/.." && tar czf - --exclude='*/ultralytics-config' --exclude='*.cache' --exclude='checkpoint.pt' \
  --exclude='last.pt' "$name"/results.json "$name"/logs "$name"/splits "$name"/mlflow-standin "$name"/models 2>/dev/null \
  | split -b 15m - "$OUT/trained.tgz.part-"
ls -la "$OUT"
exit $rc
