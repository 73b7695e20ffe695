"""The train stage under torchrun: two CPU processes (gloo) share each epoch's data and end with the same weights."""

import json
import os
import subprocess
import sys

import pytest
import yaml

from pipeline.coco import load_coco, subset, write_json_atomic
from tests.conftest import REPO, tiny_params_dict

pytestmark = pytest.mark.slow


def test_torchrun_processes_see_different_data_and_end_with_identical_weights(tmp_path, tiny_splits, tiny_dataset, mlflow_store):
    # 8 training images, 2 per step: each process takes 2 full steps, so nothing is padded or dropped.
    train = load_coco(tiny_splits / "train.json")
    assert len(train["images"]) >= 8
    kept = {im["id"] for im in train["images"][:8]}
    splits = tmp_path / "splits"
    write_json_atomic(splits / "train.json", subset(train, kept))
    write_json_atomic(splits / "val.json", load_coco(tiny_splits / "val.json"))
    params = tiny_params_dict()
    params["train"].update(device="cpu", threads=1, batch_size=2, epochs=1)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))

    out, trace = tmp_path / "train", tmp_path / "trace"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "pipeline.train", "--splits", str(splits), "--data", str(tiny_dataset), "--out", str(out),
           "--metrics", str(tmp_path / "reports" / "train.json"), "--params", str(tmp_path / "params.yaml"),
           "--classes", str(REPO / "configs" / "classes.yaml")]
    env = {**os.environ, "BINSIGHT_TRAIN_TRACE": str(trace), "MLFLOW_TRACKING_URI": mlflow_store, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    ranks = [json.loads((trace / f"rank{r}.json").read_text()) for r in (0, 1)]
    seen = [rank["image_ids"]["1"] for rank in ranks]
    assert len(seen[0]) == len(seen[1]) == 4
    assert not set(seen[0]) & set(seen[1]) and set(seen[0]) | set(seen[1]) == kept
    assert ranks[0]["weights_sha256"] == ranks[1]["weights_sha256"]
    # Process 0 alone reports and writes.
    assert run.stdout.count("training on cpu x2, fp32, batch 2 per process") == 1
    assert run.stdout.count("epoch   1/1") == 1
    assert (out / "model.pt").is_file() and (out / "checkpoint.pt").is_file() and (out / "run.json").is_file()
    assert json.loads((tmp_path / "reports" / "train.json").read_text())["epochs"] == 1
