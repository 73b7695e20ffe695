"""`make bench-device-wheels`: the packages bench/device_realdata.sh needs that the GPU machine lacks, as wheels in .whl/.

    python -m bench.device_wheels [--out .whl] [--no-yolo]

The rented GPU machine (Python 3.12, torch, torchvision, onnxruntime, OpenCV,
numpy, scipy, PyYAML, matplotlib, ...) has no package index; what else the
benchmark imports travels in .whl/ (git-ignored) and device_realdata.sh
installs it there with `pip install --no-index --no-deps`. Each package is
fetched at the version installed here, so the GPU rows run the Python code
of the CPU rows (numpy, OpenCV and scipy stay the machine's own versions, so
augmented pixels may still differ in the last bits). `--no-deps` there means
every dependency is named here; the list was found by importing the
benchmark's training path with `python -X importtime` and keeping what the
machine's package list (the device tool's KINDS.md) lacks. MLflow and polars
are left out on purpose: too large for the 64 MiB a call may carry, and
stood in for (bench/tracking_standin.py, bench/yolo_contender.py).
"""

from __future__ import annotations

import argparse
import re
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


def normalised(name: str) -> str:
    """A distribution name as wheel file names spell it (PEP 427: runs of -_. as one _, lower case)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def download(pins: list[str], out: Path) -> None:
    out.mkdir(exist_ok=True)
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "--python-version", DEVICE_PYTHON,
           "--implementation", "cp", *platforms, "--dest", str(out), *pins]  # fmt: skip
    if subprocess.run(cmd).returncode != 0:
        raise SystemExit("pip download failed (above); is the package index reachable?")


def runs_on_the_device(wheel: Path) -> bool:
    """Its tags (the file name's last three fields) fit CPython 3.12 on x86-64 Linux."""
    python, abi, platform = wheel.name.removesuffix(".whl").split("-")[-3:]
    pythons, platforms = python.split("."), platform.split(".")
    return (any(t in ("py3", "cp312", f"py{DEVICE_PYTHON.replace('.', '')}") for t in pythons) and abi in ("none", "abi3", "cp312")
            and (platforms == ["any"] or any(t in PLATFORMS for t in platforms)))  # fmt: skip


def check(pins: list[str], out: Path) -> list[Path]:
    """The folder holds exactly the pinned wheels, each for the device's Python: device_realdata.sh installs
    every *.whl with --no-deps, and two versions of one package, or one nobody asked for, stop or change that install."""
    wheels = sorted(out.glob("*.whl"))
    wanted = {normalised(pin.partition("==")[0]): pin.partition("==")[2] for pin in pins}
    problems, found = [], {}
    for wheel in wheels:
        name, version = wheel.name.split("-")[:2]
        found.setdefault(normalised(name), []).append(wheel)
        if normalised(name) not in wanted:
            problems.append(f"{wheel.name} is not on the list: delete it")
        elif version != wanted[normalised(name)]:
            problems.append(f"{wheel.name} is not the pinned {normalised(name)}=={wanted[normalised(name)]}: delete it")
        elif not runs_on_the_device(wheel):
            problems.append(f"{wheel.name} is not for CPython {DEVICE_PYTHON} on x86-64 Linux: delete it")
    problems += [f"no wheel for {pin}" for pin in pins if normalised(pin.partition("==")[0]) not in found]
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
