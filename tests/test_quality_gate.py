"""The quality gate (pipeline.inspection.quality_issue): each way a truck camera fails is named; real scenes pass.

Fog and steam are checked on real photos (../shared/data/trashnetpp, skipped
where absent): albumentations' RandomFog at strong settings and a haze that
lowers contrast (blend towards white) must be set aside as `foggy`, ordinary
photos must pass.
"""

import json
from collections import Counter

import numpy as np
import pytest
from PIL import Image, ImageFilter

from bench import quality_gate as gate_bench
from pipeline.config import load_params
from pipeline.imageio import read_rgb
from pipeline.inspection import quality_issue
from tests.conftest import REPO, SHARED

GATE = load_params(REPO / "configs/params.yaml").verdict.quality
TRASHNETPP = SHARED / "data" / "trashnetpp" / "valid" / "images"


@pytest.fixture(scope="module")
def clean_captures(tiny_dataset) -> list[np.ndarray]:
    coco = json.loads((tiny_dataset / "annotations.json").read_text())
    return [read_rgb(tiny_dataset / "images" / im["file_name"]) for im in coco["images"] if not im["degradations"]]


@pytest.fixture
def scene(clean_captures):
    return np.asarray(Image.fromarray(clean_captures[0]).resize((320, 320)))


def test_usable_scenes_pass(clean_captures):
    assert len(clean_captures) >= 5
    for rgb in clean_captures:
        assert quality_issue(rgb, GATE) is None
        assert quality_issue(np.asarray(Image.fromarray(rgb).resize((320, 320))), GATE) is None


def test_night_is_too_dark(scene):
    assert quality_issue((scene * 0.15).astype(np.uint8), GATE) == "too_dark"


def test_sun_into_the_bin_is_overexposed(scene):
    assert quality_issue(np.clip(scene.astype(int) * 8, 0, 255).astype(np.uint8), GATE) == "overexposed"


def test_covered_lens_has_no_contrast():
    assert quality_issue(np.full((240, 320, 3), 120, np.uint8), GATE) == "covered"


def test_heavy_blur_is_blurred(scene):
    blurred = np.asarray(Image.fromarray(scene).filter(ImageFilter.GaussianBlur(4)))
    assert quality_issue(blurred, GATE) == "blurred"


@pytest.mark.parametrize("amount", [0.4, 0.5])
def test_steam_over_a_bin_is_foggy(clean_captures, amount):
    for rgb in clean_captures:
        assert quality_issue(gate_bench.haze(rgb, amount), GATE) == "foggy"


def test_dense_steam_over_a_dark_bin_is_set_aside(clean_captures):
    # The generated bins are dark and soft (luminance std 20-26): under a 0.7
    # veil hardly any contrast is left, and some read as a covered lens.
    for rgb in clean_captures:
        assert quality_issue(gate_bench.haze(rgb, 0.7), GATE) in {"foggy", "covered"}


def test_gate_works_on_large_photos(scene):
    big = np.asarray(Image.fromarray(scene).resize((1920, 1920), Image.Resampling.NEAREST))
    assert quality_issue(big, GATE) is None
    assert quality_issue(gate_bench.haze(big, 0.65), GATE) == "foggy"


@pytest.fixture(scope="module")
def real_photos() -> list[np.ndarray]:
    if not TRASHNETPP.is_dir():
        pytest.skip(f"{TRASHNETPP} is not present")
    files = sorted(TRASHNETPP.glob("*.jpg"))[::4]  # 129 of the 515: enough for the rates, cheap to run
    return [read_rgb(f) for f in files]


def issue_shares(images) -> Counter:
    found = Counter(quality_issue(rgb, GATE) for rgb in images)
    return Counter({k: v / len(images) for k, v in found.items()})


def test_real_photos_pass_and_are_rarely_mistaken_for_fog(real_photos):
    # Measured on all 515 validation photos: 97.1 % pass, 1.7 % foggy (white
    # floors under small, pale objects), 1.0 % too dark; train photos: 98.2 %
    # pass. These 129: 96.9 % pass, 0.8 % foggy, 2.3 % too dark.
    shares = issue_shares(real_photos)
    assert shares[None] >= 0.95, shares
    assert shares["foggy"] <= 0.03, shares


def test_strong_random_fog_on_real_photos_is_foggy(real_photos):
    # On all 515 validation photos (make bench-quality-gate, BENCHMARKS.md): 98.1-99.0 % foggy over fog seeds 0-4,
    # 0.2 % overexposed, the rest pass;
    # on these 129 with fog seeds 0-4: 95.3-99.2 % foggy, the rest pass.
    fog = gate_bench.strong_fog(seed=0)
    shares = issue_shares([fog(image=rgb)["image"] for rgb in real_photos])
    assert shares["foggy"] >= 0.90, shares
    assert shares[None] <= 0.08, shares


@pytest.mark.parametrize("amount", [0.6, 0.7])
def test_contrast_lowering_haze_on_real_photos_is_foggy(real_photos, amount):
    # On all 515 validation photos (make bench-quality-gate): 98.6 % (0.6) and 98.4 % (0.7) foggy; the rest mostly overexposed.
    shares = issue_shares([gate_bench.haze(rgb, amount) for rgb in real_photos])
    assert shares["foggy"] >= 0.93, shares
    assert shares[None] <= 0.03, shares


def test_the_gate_benchmark_counts_what_the_gate_says_per_condition(tmp_path, scene, capsys):
    photos = tmp_path / "valid" / "images"
    photos.mkdir(parents=True)
    Image.fromarray(scene).save(photos / "a_scene.jpg", quality=95)
    Image.fromarray((scene * 0.15).astype(np.uint8)).save(photos / "b_night.jpg", quality=95)
    assert gate_bench.main(["--source", str(tmp_path), "--splits", "valid", "--fog-seeds", "2", "--json", str(tmp_path / "gate.json")]) == 0
    counts = json.loads((tmp_path / "gate.json").read_text())["splits"]["valid"]
    photos_as_read = [read_rgb(photos / name) for name in ("a_scene.jpg", "b_night.jpg")]
    expected = {"as taken": [quality_issue(rgb, GATE) for rgb in photos_as_read]}
    for seed in (0, 1):
        fog = gate_bench.strong_fog(seed)
        expected[f"strong RandomFog, seed {seed}"] = [quality_issue(fog(image=rgb)["image"], GATE) for rgb in photos_as_read]
    for amount in (0.6, 0.7):
        expected[f"haze {amount:.0%} to white"] = [quality_issue(gate_bench.haze(rgb, amount), GATE) for rgb in photos_as_read]
    for share in (0.9, 0.75, 0.6):
        expected[f"haze 60% over {share:.0%} of the frame"] = [quality_issue(gate_bench.partial_steam(rgb, share), GATE) for rgb in photos_as_read]
    assert counts == {name: {str(k): v for k, v in Counter(found).items()} for name, found in expected.items()}
    assert counts["as taken"] == {"None": 1, "too_dark": 1} and counts["strong RandomFog, seed 0"] == {"foggy": 2}
    assert "| as taken | 2 | 50.0 % | 50.0 % |" in capsys.readouterr().out


def test_partial_steam_veils_the_share_of_the_frame_it_names():
    """The benchmark's partial-steam rows mean what they say: the centre moves 60 % of the way to white, the rim not."""
    black = np.zeros((200, 300, 3), np.uint8)
    veiled = gate_bench.partial_steam(black, 0.75)
    assert veiled[100, 150, 0] == round(0.6 * 255) and veiled[0, 0, 0] < 10
    lifted = (veiled[..., 0] > 0.3 * 255).mean()  # more than halfway up the feathered edge
    assert 0.65 < lifted < 0.85


@pytest.mark.parametrize("setup, argv, message", [
    (None, ["--source", "{tmp}/nowhere"], "{tmp}/nowhere is not a folder"),
    ("corrupt", ["--source", "{tmp}"], "{tmp}/valid/images/broken.jpg: not a readable image"),
    (None, ["--source", "{tmp}", "--params", "{tmp}/none.yaml"], "config file not found: {tmp}/none.yaml"),
])
def test_the_gate_benchmark_names_each_bad_input_in_one_line(tmp_path, capsys, setup, argv, message):
    (tmp_path / "valid" / "images").mkdir(parents=True)
    if setup == "corrupt":
        (tmp_path / "valid" / "images" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    with pytest.raises(SystemExit) as stop:
        gate_bench.main([a.format(tmp=tmp_path) for a in argv])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.startswith("bench.quality_gate: error: ") and err.count("\n") == 1
    assert message.format(tmp=tmp_path) in err


@pytest.mark.parametrize("every", ["0", "-1", "x"])
def test_the_gate_benchmark_refuses_a_step_below_one(tmp_path, capsys, every):
    with pytest.raises(SystemExit):
        gate_bench.main(["--source", str(tmp_path), "--every", every])
    assert "is not a whole number of at least 1" in capsys.readouterr().err
