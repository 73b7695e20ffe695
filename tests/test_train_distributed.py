"""The train stage under torchrun: two CPU processes (gloo) share each epoch's data and end with the same weights;
process 0 alone opens the MLflow run and writes the checkpoint and the model."""

import json
import os
import subprocess
import sys

import pytest
import yaml

from pipeline.coco import load_coco, subset, write_json_atomic
from tests.conftest import REPO, tiny_params_dict

pytestmark = pytest.mark.slow

# pipeline.train as torchrun starts it, with every torch.save noted: each process writes the names of the files it
# saved to $SAVES/rank<RANK>.json. Both processes share the output folder, so the files alone cannot say who wrote them.
NOTING_SAVES = """
import json, os, sys
from pathlib import Path

import torch

saves = []
real_save = torch.save


def noting_save(obj, f, *args, **kwargs):
    saves.append(Path(f).name)
    return real_save(obj, f, *args, **kwargs)


torch.save = noting_save
from pipeline.train import main

try:
    main(sys.argv[1:])
finally:
    Path(os.environ["SAVES"], f"rank{os.environ['RANK']}.json").write_text(json.dumps(saves))
"""


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

    out, trace, saves = tmp_path / "train", tmp_path / "trace", tmp_path / "saves"
    saves.mkdir()
    script = tmp_path / "train_noting_saves.py"
    script.write_text(NOTING_SAVES)
    experiment = f"distributed-{tmp_path.name}"  # this test's own experiment in the session's store: its runs alone
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(script), "--splits", str(splits), "--data", str(tiny_dataset), "--out", str(out),
           "--metrics", str(tmp_path / "reports" / "train.json"), "--params", str(tmp_path / "params.yaml"),
           "--classes", str(REPO / "configs" / "classes.yaml")]
    env = {**os.environ, "BINSIGHT_TRAIN_TRACE": str(trace), "MLFLOW_TRACKING_URI": mlflow_store, "OMP_NUM_THREADS": "1",
           "MLFLOW_EXPERIMENT_NAME": experiment, "SAVES": str(saves),
           # the script's folder, not the repository, leads sys.path: this checkout's pipeline, not an installed one
           "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
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
    # One epoch: process 0 saves one checkpoint (written as .tmp, then renamed) and the model; process 1 nothing.
    assert [json.loads((saves / f"rank{r}.json").read_text()) for r in (0, 1)] == [["checkpoint.tmp", "model.pt"], []]
    import mlflow

    store = mlflow.MlflowClient(tracking_uri=mlflow_store)
    runs = store.search_runs([store.get_experiment_by_name(experiment).experiment_id])
    assert [r.info.run_id for r in runs] == [json.loads((out / "run.json").read_text())["run_id"]]
    assert runs[0].data.params["processes"] == "2" and "val_map_50" in runs[0].data.metrics
