"""bench.seed_table: mean ± sd over seeds of bench.realdata runs, and refusing runs that differ in more than the seed."""

import json

import pytest
import yaml

from bench import seed_table


def write_run(folder, seed, map_50, *, splits="ab12", lr=0.002):
    folder.mkdir(parents=True)
    row = {"seed": seed, "epochs": 50, "splits_sha256": splits, "settings": {"input": 320}, "best_epoch": 50,
           "map_50": map_50, "map": map_50 / 2,
           "per_class": {"can": {"ap_50": map_50 + 0.1, "ap": 0.1}, "glass": {"ap_50": map_50 - 0.1, "ap": 0.1}},
           "verdict": {"precision": 0.998, "recall": 1.0, "threshold": 0.42}}
    (folder / "results.json").write_text(json.dumps({"rows": {"binsight": row}}))
    (folder / "models" / "binsight").mkdir(parents=True)  # where bench.realdata keeps what each contender trained with
    (folder / "models" / "binsight" / "params.yaml").write_text(
        yaml.safe_dump({"model": {"backbone": "mobilenet_v3_small"}, "train": {"seed": seed, "num_workers": seed, "lr": lr, "epochs": 50}}))
    return folder


def test_three_seeds_give_their_rows_and_the_sample_mean_and_sd(tmp_path, capsys):
    runs = [write_run(tmp_path / f"s{seed}", seed, value) for seed, value in [(3, 0.6), (1, 0.4), (2, 0.5)]]
    # A later run records a parameter added since with its null default: the same training.
    results = json.loads((runs[0] / "results.json").read_text())
    results["rows"]["binsight"]["settings"]["backbone_weights_sha256"] = None
    (runs[0] / "results.json").write_text(json.dumps(results))
    params = runs[0] / "models" / "binsight" / "params.yaml"
    raw = yaml.safe_load(params.read_text())
    raw["model"]["backbone_weights_sha256"] = None
    params.write_text(yaml.safe_dump(raw))
    assert seed_table.main([str(r) for r in runs]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" | ")[0] for line in lines[2:5]] == ["| 1", "| 2", "| 3"]  # sorted by seed
    assert lines[-1].startswith("| mean ± sd (3 seeds) | 0.500 ± 0.100 | 0.250 ± 0.050 |")
    assert "0.600 ± 0.100 | 0.400 ± 0.100 |" in lines[-1]  # per class: can, glass


@pytest.mark.parametrize("change, message", [
    ({"splits": "cd34"}, "splits_sha256 differs"),
    ({"lr": 0.004}, "other binsight parameters than"),
])
def test_runs_that_differ_in_more_than_the_seed_are_refused(tmp_path, capsys, change, message):
    first = write_run(tmp_path / "s1", 1, 0.4)
    other = write_run(tmp_path / "s2", 2, 0.5, **change)
    with pytest.raises(SystemExit) as stop:
        seed_table.main([str(first), str(other)])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("bench.seed_table: error: ") and message in err and err.count("\n") == 1


def test_the_refusal_names_the_run_and_the_difference(tmp_path):
    write_run(tmp_path / "s1", 1, 0.4)
    write_run(tmp_path / "s2", 2, 0.5, splits="cd34")
    write_run(tmp_path / "again", 1, 0.5)
    runs = [seed_table.load_run(tmp_path / name, "binsight") for name in ("s1", "s2")]
    with pytest.raises(seed_table.SeedRunMismatch, match=r"s2/results.json: splits_sha256 differs .*\(cd34 vs ab12\)"):
        seed_table.check_comparable(runs)
    with pytest.raises(seed_table.SeedRunMismatch, match=r"seeds repeat: \[1, 1\]"):
        seed_table.check_comparable([seed_table.load_run(tmp_path / n, "binsight") for n in ("s1", "again")])
    with pytest.raises(seed_table.SeedRunMismatch, match="no row for 'yolo26n'"):
        seed_table.load_run(tmp_path / "s1", "yolo26n")
    (tmp_path / "s1" / "models" / "binsight" / "params.yaml").write_text("train: [")
    with pytest.raises(seed_table.SeedRunMismatch, match="params.yaml: not a binsight parameter file"):
        seed_table.load_run(tmp_path / "s1", "binsight")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(seed_table.SeedRunMismatch, match="broken.json: not a readable results.json"):
        seed_table.load_run(tmp_path / "broken.json", "binsight")


def test_a_key_set_in_one_run_and_absent_in_another_is_still_a_difference(tmp_path):
    first, other = write_run(tmp_path / "s1", 1, 0.4), write_run(tmp_path / "s2", 2, 0.5)
    params = other / "models" / "binsight" / "params.yaml"
    raw = yaml.safe_load(params.read_text())
    raw["model"]["backbone_weights_sha256"] = "ab" * 32  # a pinned weights file: another training
    params.write_text(yaml.safe_dump(raw))
    with pytest.raises(seed_table.SeedRunMismatch, match="other binsight parameters"):
        seed_table.check_comparable([seed_table.load_run(p, "binsight") for p in (first, other)])


def test_one_run_is_no_spread(tmp_path, capsys):
    with pytest.raises(SystemExit):
        seed_table.main([str(write_run(tmp_path / "s1", 1, 0.4))])
    assert "a spread needs at least two runs" in capsys.readouterr().err
