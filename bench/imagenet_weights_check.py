"""Is the local ImageNet backbone file sound? Its top-3 ImageNet classes for scikit-image's sample photos.

    python -m bench.imagenet_weights_check [--weights ../shared/weights/mobilenet_v2_imagenet.pth]

torchvision's MobileNetV2 with the file's state_dict and its README's input
scaling ([-1, 1]); a sound file names the cat, the coffee and the rocket.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torchvision
from skimage import data
from torchvision.models import MobileNet_V2_Weights

PHOTOS = ("chelsea", "coffee", "rocket")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=Path("../shared/weights/mobilenet_v2_imagenet.pth"))
    args = parser.parse_args(argv)
    model = torchvision.models.mobilenet_v2()
    model.load_state_dict(torch.load(args.weights, map_location="cpu", weights_only=True))
    model.eval()
    categories = MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"]  # names only: nothing is downloaded
    for name in PHOTOS:
        image = torch.from_numpy(getattr(data, name)()).permute(2, 0, 1).float().div(255)
        image = torch.nn.functional.interpolate(image[None], size=(224, 224), mode="bilinear", antialias=True)
        with torch.no_grad():
            top = model((image - 0.5) / 0.5).softmax(1)[0].topk(3)
        print(name, ", ".join(f"{categories[i]} {p:.2f}" for p, i in zip(top.values.tolist(), top.indices.tolist())))


if __name__ == "__main__":
    main()
