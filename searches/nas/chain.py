"""Macro chain space: a chain of convolutional blocks for small images."""
from __future__ import annotations

from torch import nn

from .space import Decision, SearchSpace

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}
POOLING = {"max": lambda: nn.MaxPool2d(2, ceil_mode=True),
           "avg": lambda: nn.AvgPool2d(2, ceil_mode=True),
           "none": nn.Identity}


class ChainSpace(SearchSpace):
    """``blocks`` conv blocks, each with its own channels and kernel size.

    Decisions of blocks beyond ``blocks`` do not change the network, so
    ``canonical`` pins them to their first choice: equivalent architectures
    hash alike and are never trained twice.
    """

    name = "chain"
    label = "Macro chain of conv blocks"

    def __init__(self, max_blocks: int = 3, channels=(8, 16, 32, 64), kernels=(3, 5)):
        self.max_blocks = int(max_blocks)
        self.channels = tuple(channels)
        self.kernels = tuple(kernels)
        self.decisions = [Decision("blocks", tuple(range(1, self.max_blocks + 1)))]
        for i in range(1, self.max_blocks + 1):
            self.decisions.append(Decision(f"channels_{i}", self.channels))
            self.decisions.append(Decision(f"kernel_{i}", self.kernels))
        self.decisions += [
            Decision("activation", tuple(ACTIVATIONS)),
            Decision("pooling", tuple(POOLING)),
            Decision("dropout", (0.0, 0.1, 0.3)),
        ]

    def settings(self):
        return {"max_blocks": self.max_blocks, "channels": list(self.channels),
                "kernels": list(self.kernels)}

    def canonical(self, arch):
        arch = dict(arch)
        for i in range(int(arch["blocks"]) + 1, self.max_blocks + 1):
            arch[f"channels_{i}"] = self.channels[0]
            arch[f"kernel_{i}"] = self.kernels[0]
        return arch

    def genotype(self, arch):
        arch = self.canonical(arch)
        blocks = "-".join(f"c{arch[f'channels_{i}']}k{arch[f'kernel_{i}']}"
                          for i in range(1, arch["blocks"] + 1))
        return f"{blocks}|{arch['activation']}|{arch['pooling']}|p{arch['dropout']}"

    def build(self, arch, input_shape, num_classes):
        arch = self.validate(arch)  # refuses unknown choices; returns the canonical form
        in_ch = input_shape[0]
        layers: list[nn.Module] = []
        for i in range(1, arch["blocks"] + 1):
            out_ch, k = arch[f"channels_{i}"], arch[f"kernel_{i}"]
            layers += [nn.Conv2d(in_ch, out_ch, k, padding=k // 2, bias=False),
                       nn.BatchNorm2d(out_ch), ACTIVATIONS[arch["activation"]](),
                       POOLING[arch["pooling"]]()]
            in_ch = out_ch
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(arch["dropout"]),
                   nn.Linear(in_ch, num_classes)]
        return nn.Sequential(*layers)
