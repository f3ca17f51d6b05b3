"""A small ResNet for multi-label ECG-page classification, in plain torch.

Four stages of basic residual blocks, each halving the resolution; global average + max pooling
(max pooling keeps small, local findings such as one wide QRS visible after pooling); one linear
head with a logit per label. About 1.2M parameters at the default widths.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn


@dataclass
class CNNConfig:
    labels: list[str]
    image_size: int = 224
    widths: list[int] = field(default_factory=lambda: [32, 64, 128, 256])
    blocks: list[int] = field(default_factory=lambda: [1, 1, 1, 1])
    stem_width: int = 24
    dropout: float = 0.1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> CNNConfig:
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = None
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        skip = x if self.shortcut is None else self.shortcut(x)
        return torch.relu(y + skip)


class SmallResNet(nn.Module):
    def __init__(self, config: CNNConfig) -> None:
        super().__init__()
        self.config = config
        self.stem = nn.Sequential(
            nn.Conv2d(3, config.stem_width, 3, 2, 1, bias=False),
            nn.BatchNorm2d(config.stem_width),
            nn.ReLU(inplace=True),
        )
        stages = []
        c = config.stem_width
        for width, n in zip(config.widths, config.blocks, strict=True):
            layers = [BasicBlock(c, width, 2)] + [BasicBlock(width, width, 1) for _ in range(n - 1)]
            stages.append(nn.Sequential(*layers))
            c = width
        self.stages = nn.Sequential(*stages)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(2 * c, len(config.labels))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        # Start each residual branch near zero so the early network is close to identity paths.
        for m in self.modules():
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: float (B, 3, H, W), already normalised. Returns logits (B, n_labels)."""
        h = self.stages(self.stem(x))
        pooled = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)
        return self.head(self.dropout(pooled))


def n_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
