"""Pack what `make bench-realdata` needs on a rented GPU machine into .devdata/ (git-ignored).

    python -m bench.device_pack [--quality 75]

Such a machine receives a copy of the checkout (at most 64 MiB) and nothing
beside it, so ../shared must travel inside: TrashNet++ (84 MB as shipped)
with every photo re-encoded as JPEG at --quality (labels untouched: the
photos keep their size, so the normalised boxes still hold), and the ImageNet
MobileNetV2 weights xz-compressed (their values came from an int8 model and
compress to 40 %; bench/device_realdata.sh unpacks them byte for byte).
Only training runs there; the export and the scoring on the test split run
here, on the original photos (BENCHMARKS.md, "On a GPU").
"""

from __future__ import annotations

import argparse
import hashlib
import io
import lzma
import shutil
from pathlib import Path

from PIL import Image

from bench.realdata_data import DEFAULT_SOURCE
from bench.realdata_train import DEFAULT_BACKBONE_WEIGHTS

PACK = Path(".devdata")


def reencode(src: Path, dst: Path, quality: int) -> None:
    with Image.open(src) as image:
        buffer = io.BytesIO()
        # exif kept: an orientation tag would otherwise be lost and turn the photo against its boxes
        image.convert("RGB").save(buffer, "JPEG", quality=quality, exif=image.info.get("exif", b""))
    dst.write_bytes(buffer.getvalue())


def pack_dataset(source: Path, out: Path, quality: int) -> int:
    if not (source / "data.yaml").is_file():
        raise SystemExit(f"TrashNet++ not found: {source / 'data.yaml'} missing (pass --source)")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    count = 0
    for path in sorted(source.rglob("*")):
        target = out / path.relative_to(source)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        elif path.suffix.lower() in (".jpg", ".jpeg"):
            reencode(path, target, quality)
            count += 1
        else:
            shutil.copyfile(path, target)
    return count


def pack_weights(weights: Path, out: Path) -> str:
    if not weights.is_file():
        raise SystemExit(f"ImageNet weights not found: {weights} (pass --weights)")
    data = weights.read_bytes()
    out.write_bytes(lzma.compress(data, preset=9))
    return hashlib.sha256(data).hexdigest()


def size_mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--weights", type=Path, default=DEFAULT_BACKBONE_WEIGHTS)
    parser.add_argument("--quality", type=int, default=75, help="JPEG quality of the travelling photos (default 75)")
    args = parser.parse_args(argv)
    if not 1 <= args.quality <= 100:
        parser.error("--quality must be 1..100")
    PACK.mkdir(exist_ok=True)
    photos = pack_dataset(args.source, PACK / "trashnetpp", args.quality)
    digest = pack_weights(args.weights, PACK / f"{args.weights.name}.xz")
    (PACK / f"{args.weights.name}.sha256").write_text(digest + "\n")
    print(f"{photos} photos at JPEG quality {args.quality}; weights sha256 {digest[:16]}...; .devdata is {size_mib(PACK):.1f} MiB")


if __name__ == "__main__":
    main()
