"""binsight's own compact backbone, for training from scratch on a CPU.

MobileNets are built for pretrained use: from random weights their depthwise
and squeeze-excite blocks need long schedules, and depthwise convolutions use
a CPU poorly. A plain stack of 3x3 convolutions with batch norm learns the
colour-and-shape cues of contaminants within a few hundred steps and runs at
a similar speed (measurements in BENCHMARKS.md). torchvision's
BackboneWithFPN turns it into a detector backbone like any other.
"""

from __future__ import annotations

from torch import nn

# (output channels, stride) per stage; the last two stages (stride 16 and 32) feed the FPN.
COMPACT_STAGES = ((24, 2), (32, 2), (64, 2), (96, 2), (128, 2))


def conv_bn_relu(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def compact_features(stages=COMPACT_STAGES) -> nn.Sequential:
    """Stages as a Sequential of named children, the form torchvision's BackboneWithFPN reads."""
    layers, cin = [], 3
    for i, (cout, stride) in enumerate(stages):
        # The stem is a single conv; later stages add a second conv at their resolution.
        block = [conv_bn_relu(cin, cout, stride)] + ([conv_bn_relu(cout, cout, 1)] if i > 0 else [])
        layers.append(nn.Sequential(*block))
        cin = cout
    features = nn.Sequential(*layers)
    for m in features.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return features
