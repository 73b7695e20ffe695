"""ONNX export: the graph's contract, its metadata, parity with PyTorch, and MLflow logging."""

import json

import numpy as np
import onnxruntime as ort
import pytest

from pipeline.export import compare


@pytest.fixture(scope="session")
def exported(tiny_model_dir, tiny_reports):
    return tiny_model_dir, json.loads((tiny_model_dir / "card_returned.json").read_text()), tiny_reports


def test_evaluation_writes_metrics_and_plots(exported):
    _, _, reports = exported
    m = json.loads((reports / "metrics.json").read_text())
    assert 0.0 <= m["map"] <= m["map_50"] <= 1.0
    assert set(m["verdict"]) >= {"precision", "recall", "f1", "threshold", "val_precision", "val_recall", "threshold_mode", "threshold_basis"}
    v = m["verdict"]  # the clean bins behind the precision figures, counted
    assert v["clean_images"] == v["fp"] + v["tn"] and 0 <= v["val_clean_images"] <= v["val_images_with_verdict"]
    assert set(m["per_class"]) == {"plastic_bag", "plastic_bottle", "can", "glass", "cardboard"}
    assert (reports / "plots" / "confusion.csv").read_text().startswith("actual,predicted")
    assert (reports / "plots" / "predictions.png").stat().st_size > 0


def test_onnx_loads_and_metadata_lists_classes(exported, taxonomy):
    out, card, _ = exported
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["class_names"]) == taxonomy.class_names
    assert json.loads(meta["thresholds"])["verdict"] == card["thresholds"]["verdict"]
    assert meta["version"] == card["version"] and "dataset_md5" in meta
    # Nothing that differs from run to run goes into a DVC output (dvc.lock must repeat): the commit
    # and the MLflow run are in provenance.json beside it.
    assert "git_commit" not in meta and "git_commit" not in card and "mlflow" not in card
    assert json.loads((out / "provenance.json").read_text())["git_commit"]
    assert json.loads((out / "model_card.json").read_text())["class_names"] == taxonomy.class_names
    assert card["parity"]["images"] == 2


def test_card_carries_the_measured_threshold_and_gate(exported, tiny_params):
    from pipeline.inspection import InspectionSpec

    out, card, reports = exported
    metrics = json.loads((reports / "metrics.json").read_text())
    assert card["thresholds"]["verdict"] == metrics["verdict"]["threshold"]
    assert card["evaluation"]["verdict"]["threshold"] == metrics["verdict"]["threshold"] and card["evaluation"]["gated"] == metrics["gated"]
    assert InspectionSpec.from_card(card) == InspectionSpec.from_params(tiny_params[0].verdict)
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    assert json.loads(session.get_modelmeta().custom_metadata_map["inspection"]) == card["inspection"]


def test_the_service_reads_the_card_export_wrote(exported, tiny_params, taxonomy):
    """Round trip export -> card -> service: one typed card in the file, the same in the ONNX metadata, read by the Detector."""
    from pipeline.inspection import InspectionSpec
    from pipeline.model_card import ModelCard, read_card
    from serve.detector import Detector

    out, returned, _ = exported
    card = read_card(out / "model_card.json")
    assert card.model_dump(mode="json", exclude_none=True) == returned and card.parity.images == 2
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    assert ModelCard.from_onnx_metadata(session.get_modelmeta().custom_metadata_map) == card.model_copy(update={"parity": None})
    detector = Detector(out, threads=1, workers=1)
    assert detector.card == card and detector.version == card.version and detector.class_names == taxonomy.class_names
    assert detector.spec == InspectionSpec.from_params(tiny_params[0].verdict)
    assert detector.policy.threshold == card.thresholds.verdict
    assert detector.policy.contaminants_by_fraction == {f: frozenset(c) for f, c in taxonomy.fractions.items()}


def test_export_takes_the_threshold_from_the_evaluation(tiny_params):
    from pipeline.export import verdict_threshold

    params = tiny_params[0]
    chosen = {"verdict": {"threshold": 0.73, "threshold_mode": "target_precision"}}
    assert verdict_threshold(params, chosen) == 0.73
    with pytest.raises(SystemExit, match="pass its metrics with --metrics"):
        verdict_threshold(params, None)
    fixed = params.model_copy(update={"verdict": params.verdict.model_copy(update={"threshold_mode": "fixed", "threshold": 0.4})})
    assert verdict_threshold(fixed, None) == 0.4
    with pytest.raises(SystemExit, match="run the evaluate stage again"):
        verdict_threshold(fixed, chosen)


def test_onnx_takes_any_image_size(exported):
    out, _, _ = exported
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    for shape in [(128, 128, 3), (240, 320, 3)]:
        boxes, labels, scores = session.run(None, {"image": np.zeros(shape, np.uint8)})
        assert boxes.shape[1:] == (4,) and labels.dtype == np.int64 and len(scores) == len(labels)
        if len(boxes):
            assert boxes[:, 2].max() <= shape[1] + 1e-3 and boxes[:, 3].max() <= shape[0] + 1e-3


def test_parity_comparison_catches_differences():
    boxes = np.array([[10.0, 20.0, 50.0, 60.0]], np.float32)
    ref = (boxes, np.array([1]), np.array([0.9], np.float32))
    assert compare(ref, (boxes * (1 + 5e-4), ref[1], ref[2]), rtol=1e-3) is None
    assert "box coordinates differ" in compare(ref, (boxes * 1.01, ref[1], ref[2]), rtol=1e-3)
    assert "labels differ" in compare(ref, (boxes, np.array([2]), ref[2]), rtol=1e-3)
    assert "detections" in compare(ref, (boxes[:0], ref[1][:0], ref[2][:0]), rtol=1e-3)
    assert "scores differ" in compare(ref, (boxes, ref[1], np.array([0.8], np.float32)), rtol=1e-3)


def test_parity_comparison_accepts_ties_in_either_order():
    # Two detections with the same score: the runtimes may sort them either way.
    boxes = np.array([[10.0, 20.0, 50.0, 60.0], [70.0, 80.0, 90.0, 99.0]], np.float32)
    ref = (boxes, np.array([5, 3]), np.array([0.31, 0.31], np.float32))
    assert compare(ref, (boxes[::-1], ref[1][::-1], ref[2][::-1]), rtol=1e-3) is None
    assert "labels differ" in compare(ref, (boxes[::-1], np.array([3, 3]), ref[2]), rtol=1e-3)


def test_mlflow_run_holds_params_epoch_metrics_evaluation_and_model(exported, tiny_trained, mlflow_store, tiny_params):
    from mlflow import MlflowClient

    _, card, _ = exported
    client = MlflowClient(mlflow_store)
    run = client.get_run(json.loads((tiny_trained / "run.json").read_text())["run_id"])
    assert run.data.params["train.epochs"] == "1" and run.data.params["model.architecture"] == tiny_params[0].model.architecture
    history = client.get_metric_history(run.info.run_id, "train_loss")
    assert [m.step for m in history] == [1]
    assert "test_map_50" in run.data.metrics and "test_verdict_f1" in run.data.metrics
    provenance = json.loads((exported[0] / "provenance.json").read_text())
    assert provenance["mlflow"]["run_id"] == run.info.run_id and run.data.tags["git_commit"] == provenance["git_commit"]
    import mlflow

    model = mlflow.models.get_model_info(provenance["mlflow"]["model_uri"])
    assert model.signature.inputs.to_dict()[0]["tensor-spec"]["dtype"] == "uint8"


def test_register_sets_the_champion_alias(exported, mlflow_store, tmp_path):
    from mlflow import MlflowClient

    from pipeline.register import register

    out, card, _ = exported
    version = register(out / "model_card.json", "champion", name="binsight-test")
    client = MlflowClient(mlflow_store)
    assert client.get_model_version_by_alias("binsight-test", "champion").version == version
    assert client.get_model_version("binsight-test", version).tags["version"] == card["version"]
    with pytest.raises(SystemExit, match="not found"):
        register(tmp_path / "missing.json", "champion")


def test_the_service_warns_when_the_cards_threshold_carries_no_measured_precision(exported):
    """A threshold chosen without clean bins to measure on (or missing its target) still flags households: the
    operator must read why at start-up, not find it in a JSON file."""
    from pipeline.model_card import read_card
    from serve.detector import unmeasured_threshold_warning

    out, _, _ = exported
    card = read_card(out / "model_card.json")

    def with_verdict(**verdict):
        evaluation = card.evaluation.model_copy(update={"verdict": {**card.evaluation.verdict, **verdict}})
        return card.model_copy(update={"evaluation": evaluation})

    assert unmeasured_threshold_warning(with_verdict(threshold_mode="target_precision", target_reached=True)) is None
    assert unmeasured_threshold_warning(with_verdict(threshold_mode="fixed", target_reached=None)) is None
    basis = "fallback to verdict.threshold: only 1 of the 261 validation images with a verdict show a clean bin"
    warning = unmeasured_threshold_warning(with_verdict(threshold_mode="target_precision", target_reached=None, threshold_basis=basis))
    assert warning is not None and basis in warning and f"model {card.version}" in warning
    assert "does not carry the target precision" in unmeasured_threshold_warning(with_verdict(threshold_mode="target_precision", target_reached=False))


def test_the_service_logs_that_warning_when_it_starts(exported, tmp_path, caplog):
    import shutil

    from fastapi.testclient import TestClient

    from serve.app import create_app
    from serve.settings import ServeSettings

    out, _, _ = exported
    model_dir = tmp_path / "model"
    shutil.copytree(out, model_dir)
    card = json.loads((model_dir / "model_card.json").read_text())
    card["evaluation"]["verdict"].update(threshold_mode="target_precision", target_reached=None,
                                         threshold_basis="fallback to verdict.threshold: only 1 of the 261 validation images")
    (model_dir / "model_card.json").write_text(json.dumps(card))
    settings = ServeSettings(model_dir=model_dir, database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", image_dir=tmp_path / "images", _env_file=None)
    with caplog.at_level("WARNING", logger="binsight.serve"), TestClient(create_app(settings)) as client:
        assert client.get("/health/ready").status_code == 200  # the model loaded: the warning is not a refusal
    assert any("only 1 of the 261 validation images" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)
