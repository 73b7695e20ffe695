"""`make bench-device-wheels`: the packages bench/device_realdata.sh needs that the GPU machine lacks, as wheels in .whl/.

    python -m bench.device_wheels [--out .whl] [--no-yolo]

The rented GPU machine (Python 3.12, torch, torchvision, onnxruntime, OpenCV,
numpy, scipy, PyYAML, matplotlib, ...) has no package index; what else the
benchmark imports travels in .whl/ (git-ignored) and device_realdata.sh
installs it there with `pip install --no-index --no-deps`. Each package is
fetched at the version installed here, so the GPU rows train with the
augmentation and settings code of the CPU rows. `--no-deps` there means
every dependency is named here; the list was found by importing the
benchmark's training path with `python -X importtime` and keeping what the
machine's package list (the device tool's KINDS.md) lacks. MLflow and polars
are left out on purpose: too large for the 64 MiB a call may carry, and
stood in for (bench/tracking_standin.py, bench/yolo_contender.py).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

# binsight's trainer: settings (pydantic), augmentation (albumentations), COCO metrics (pycocotools).
BINSIGHT = ("albumentations", "albucore", "simsimd", "stringzilla", "pydantic", "pydantic-core", "annotated-types",
            "typing-inspection", "pycocotools")  # fmt: skip
YOLO = ("ultralytics", "ultralytics-thop")  # the YOLO contenders (AGPL: in .venv-bench only, never a binsight dependency)
DEVICE_PYTHON = "3.12"
# pip matches manylinux tags exactly; these cover the wheels of the packages above.
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64")  # fmt: skip


def pinned(names: tuple[str, ...]) -> list[str]:
    """NAME==VERSION as installed in this Python; a missing one stops with the venv to use."""
    pins, missing = [], []
    for name in names:
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            missing.append(name)
    if missing:
        raise SystemExit(f"not installed in {sys.executable}: {', '.join(missing)}; run this with .venv-bench/bin/python "
                         "(make bench-device-wheels builds it), or pass --no-yolo for binsight's contenders only")
    return pins


def wheel_name(requirement: str) -> str:
    """The file-name prefix of a requirement's wheel: its name normalised as wheels spell it."""
    name, _, ver = requirement.partition("==")
    return f"{name.replace('-', '_').lower()}-{ver}-"


def download(pins: list[str], out: Path) -> None:
    out.mkdir(exist_ok=True)
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "--python-version", DEVICE_PYTHON,
           "--implementation", "cp", *platforms, "--dest", str(out), *pins]  # fmt: skip
    if subprocess.run(cmd).returncode != 0:
        raise SystemExit("pip download failed (above); is the package index reachable?")


def check(pins: list[str], out: Path) -> list[Path]:
    """Exactly one wheel per package, the pinned one: two versions of one package stop the whole install there."""
    wheels = sorted(out.glob("*.whl"))
    problems = []
    for pin in pins:
        prefix = wheel_name(pin)
        name = prefix.split("-")[0]
        same_name = [w for w in wheels if w.name.lower().startswith(f"{name}-")]
        if not any(w.name.lower().startswith(prefix) for w in same_name):
            problems.append(f"no wheel for {pin}")
        elif len(same_name) > 1:
            problems.append(f"{len(same_name)} wheels of {name} ({', '.join(w.name for w in same_name)}): delete all but {pin}")
    if problems:
        raise SystemExit(f"{out}: " + "; ".join(problems))
    return wheels


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(".whl"))
    parser.add_argument("--no-yolo", action="store_true", help="binsight's contenders only (no Ultralytics wheels)")
    args = parser.parse_args(argv)
    pins = pinned(BINSIGHT + (() if args.no_yolo else YOLO))
    download(pins, args.out)
    wheels = check(pins, args.out)
    size = sum(w.stat().st_size for w in wheels)
    print(f"{args.out}: {len(wheels)} wheels, {size / 2**20:.1f} MiB, for Python {DEVICE_PYTHON}: {', '.join(pins)}")


if __name__ == "__main__":
    main()
