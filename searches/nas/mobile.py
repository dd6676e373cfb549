"""MobileNetV2 / FBNet style space of inverted-residual blocks.

The macro layout is fixed: a stem conv, ``stages`` stages of
``blocks_per_stage`` blocks (the first stage keeps the resolution, each later
one halves it and doubles the channels), a 1x1 head conv, global pooling and
a linear classifier. Each block chooses its expansion ratio and depthwise
kernel size, or (except a stage's first block, which changes the shape) to
be skipped; one width multiplier scales every channel count.
"""
from __future__ import annotations

from torch import nn

from .cell import check_image_shape
from .space import Decision, SearchSpace

SKIP = "skip"


def scaled_channels(channels: float, divisor: int = 4) -> int:
    """Round a scaled channel count to a multiple of ``divisor`` (never below it)."""
    return max(divisor, int(channels + divisor / 2) // divisor * divisor)


def conv_bn(c_in, c_out, kernel, stride=1, groups=1, activation=True):
    layers = [nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2,
                        groups=groups, bias=False),
              nn.BatchNorm2d(c_out)]
    if activation:
        layers.append(nn.ReLU6(inplace=True))
    return layers


class InvertedResidual(nn.Module):
    """1x1 expand -> kxk depthwise -> 1x1 linear projection, residual when shapes allow."""

    def __init__(self, c_in, c_out, stride, expand, kernel):
        super().__init__()
        hidden = c_in * expand
        # With expansion 1 the expand conv would be a plain 1x1 remap; MobileNetV2 drops it.
        layers = conv_bn(c_in, hidden, 1) if expand != 1 else []
        layers += conv_bn(hidden, hidden, kernel, stride, groups=hidden)
        layers += conv_bn(hidden, c_out, 1, activation=False)
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x):
        out = self.body(x)
        return x + out if self.residual else out


class MobileNetwork(nn.Module):
    def __init__(self, stem, blocks, head):
        super().__init__()
        self.stem, self.blocks, self.head = stem, blocks, head

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)))


class MobileSpace(SearchSpace):
    name = "mobile"
    label = "MobileNetV2-style inverted residual blocks"

    def __init__(self, stages: int = 3, blocks_per_stage: int = 2, base_channels: int = 16,
                 expansions=(1, 3, 6), kernels=(3, 5, 7), widths=(0.5, 0.75, 1.0)):
        self.stages = int(stages)
        self.blocks_per_stage = int(blocks_per_stage)
        self.base_channels = int(base_channels)
        self.expansions = tuple(int(e) for e in expansions)
        self.kernels = tuple(int(k) for k in kernels)
        self.widths = tuple(float(w) for w in widths)
        if self.stages < 1 or self.blocks_per_stage < 1:
            raise ValueError("a mobile space needs at least one stage of one block")
        self.decisions = [Decision("width", self.widths)]
        for s, b in self.block_ids():
            # A stage's first block changes stride and channels, so it cannot be an identity.
            expand = self.expansions if b == 1 else self.expansions + (SKIP,)
            self.decisions.append(Decision(f"s{s}_b{b}_expand", expand))
            self.decisions.append(Decision(f"s{s}_b{b}_kernel", self.kernels))

    def block_ids(self):
        return [(s, b) for s in range(1, self.stages + 1)
                for b in range(1, self.blocks_per_stage + 1)]

    def settings(self):
        return {"stages": self.stages, "blocks_per_stage": self.blocks_per_stage,
                "base_channels": self.base_channels, "expansions": list(self.expansions),
                "kernels": list(self.kernels), "widths": list(self.widths)}

    def stage_channels(self, width: float) -> list[int]:
        """Channels of the stem (index 0) and of each stage."""
        return [scaled_channels(self.base_channels * width)] + [
            scaled_channels(self.base_channels * 2 ** (s - 1) * width)
            for s in range(1, self.stages + 1)]

    def canonical(self, arch):
        arch = dict(arch)
        for s, b in self.block_ids():
            if arch[f"s{s}_b{b}_expand"] == SKIP:
                arch[f"s{s}_b{b}_kernel"] = self.kernels[0]
        # On narrow nets rounding can give two multipliers the same channels: same network.
        channels = self.stage_channels(arch["width"])
        arch["width"] = next(w for w in self.widths if self.stage_channels(w) == channels)
        return arch

    def genotype(self, arch):
        arch = self.canonical(arch)
        stages = []
        for s in range(1, self.stages + 1):
            blocks = []
            for b in range(1, self.blocks_per_stage + 1):
                expand, kernel = arch[f"s{s}_b{b}_expand"], arch[f"s{s}_b{b}_kernel"]
                blocks.append(SKIP if expand == SKIP else f"e{expand}k{kernel}")
            stages.append("-".join(blocks))
        return f"w{arch['width']}|" + "|".join(stages)

    def build(self, arch, input_shape, num_classes):
        arch = self.validate(arch)
        in_channels = check_image_shape(input_shape)[0]
        channels = self.stage_channels(arch["width"])
        stem = nn.Sequential(*conv_bn(in_channels, channels[0], 3))
        blocks, c_in = [], channels[0]
        for s, b in self.block_ids():
            expand = arch[f"s{s}_b{b}_expand"]
            if expand == SKIP:
                continue
            # Only stages after the first downsample: small inputs (8x8 digits) keep some resolution.
            stride = 2 if b == 1 and s > 1 else 1
            blocks.append(InvertedResidual(c_in, channels[s], stride, expand, arch[f"s{s}_b{b}_kernel"]))
            c_in = channels[s]
        head_channels = 4 * c_in  # MobileNetV2's 320 -> 1280 head ratio
        head = nn.Sequential(*conv_bn(c_in, head_channels, 1), nn.AdaptiveAvgPool2d(1),
                             nn.Flatten(), nn.Linear(head_channels, num_classes))
        return MobileNetwork(stem, nn.Sequential(*blocks), head)
