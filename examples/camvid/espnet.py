"""ESPNet (Mehta et al., ECCV 2018) in plain PyTorch, shaped to load sacmehta/ESPNet's CamVid weights.

Written from the paper and checked against the state_dict of `espnet_p_2_q_8_camvid.pth`: attribute
names mirror the checkpoint's keys so `load_state_dict(..., strict=True)` works unchanged. This is
the decoder variant ("ESPNet", not ESPNet-C) whose last 3x3 conv takes 19 + classes input channels.

Input: an (N, 3, H, W) float batch in BGR order, normalised as the upstream trainer did:
``(pixel - mean) / std / 255`` with CamVid train statistics (0-255 scale). H and W must be
multiples of 8. Output: logits (N, classes, H, W) at full resolution.
"""
from __future__ import annotations

import torch
from torch import nn

_BN_EPS = 1e-3  # upstream uses 1e-3 everywhere; the default 1e-5 shifts every activation slightly


class ConvBNAct(nn.Module):
    """k x k conv (no bias, 'same' padding) -> BatchNorm -> PReLU."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, stride, (k - 1) // 2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=_BN_EPS)
        self.act = nn.PReLU(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class BNAct(nn.Module):
    """BatchNorm -> PReLU (used after concatenations)."""

    def __init__(self, channels: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, eps=_BN_EPS)
        self.act = nn.PReLU(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(x))


class Conv(nn.Module):
    """Bias-free conv kept in a wrapper so its weight is named `<name>.conv.weight` like upstream."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        pad = (k - 1) // 2 * dilation
        self.conv = nn.Conv2d(c_in, c_out, k, stride, pad, dilation=dilation, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class _ESPBranches(nn.Module):
    """Reduce -> split into 5 dilated 3x3 branches (d = 1, 2, 4, 8, 16) -> hierarchical sum -> concat.

    The d=1 branch gets the remainder channels so the concatenation has exactly `c_out` channels.
    """

    def __init__(self, c_in: int, c_out: int, reduce_k: int, reduce_stride: int):
        super().__init__()
        width = c_out // 5
        self.c1 = Conv(c_in, width, reduce_k, reduce_stride)
        self.d1 = Conv(width, c_out - 4 * width, 3, dilation=1)
        self.d2 = Conv(width, width, 3, dilation=2)
        self.d4 = Conv(width, width, 3, dilation=4)
        self.d8 = Conv(width, width, 3, dilation=8)
        self.d16 = Conv(width, width, 3, dilation=16)

    def branches(self, x: torch.Tensor) -> torch.Tensor:
        reduced = self.c1(x)
        # Hierarchical feature fusion: each wider-dilation branch adds the ones before it (de-gridding).
        summed = [self.d2(reduced)]
        for branch in (self.d4, self.d8, self.d16):
            summed.append(summed[-1] + branch(reduced))
        return torch.cat([self.d1(reduced)] + summed, 1)


class ESPDown(_ESPBranches):
    """Strided ESP module (3x3 stride-2 reduction), halves the resolution; no residual."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(c_in, c_out, reduce_k=3, reduce_stride=2)
        self.bn = nn.BatchNorm2d(c_out, eps=_BN_EPS)
        self.act = nn.PReLU(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.branches(x)))


class ESPBlock(_ESPBranches):
    """ESP module with 1x1 reduction; residual add (before BN-PReLU) when `residual`."""

    def __init__(self, c_in: int, c_out: int, residual: bool = True):
        super().__init__(c_in, c_out, reduce_k=1, reduce_stride=1)
        self.bn = BNAct(c_out)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        merged = self.branches(x)
        if self.residual:
            merged = merged + x
        return self.bn(merged)


def _downsample_image(x: torch.Tensor, times: int) -> torch.Tensor:
    """Input reinforcement: the image average-pooled (3x3, stride 2, pad 1) `times` times."""
    for _ in range(times):
        x = nn.functional.avg_pool2d(x, 3, stride=2, padding=1)
    return x


class ESPNetEncoder(nn.Module):
    """ESPNet-C: three levels (1/2, 1/4, 1/8) with the image injected at 1/2 and 1/4."""

    def __init__(self, classes: int, p: int, q: int):
        super().__init__()
        self.level1 = ConvBNAct(3, 16, 3, 2)
        self.b1 = BNAct(16 + 3)
        self.level2_0 = ESPDown(16 + 3, 64)
        self.level2 = nn.ModuleList(ESPBlock(64, 64) for _ in range(p))
        self.b2 = BNAct(128 + 3)
        self.level3_0 = ESPDown(128 + 3, 128)
        self.level3 = nn.ModuleList(ESPBlock(128, 128) for _ in range(q))
        self.b3 = BNAct(256)
        self.classifier = Conv(256, classes, 1)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return the three concatenated level outputs (at 1/2, 1/4 and 1/8 resolution)."""
        level1 = self.b1(torch.cat([self.level1(x), _downsample_image(x, 1)], 1))
        down2 = self.level2_0(level1)
        out2 = down2
        for block in self.level2:
            out2 = block(out2)
        level2 = self.b2(torch.cat([out2, down2, _downsample_image(x, 2)], 1))
        down3 = self.level3_0(level2)
        out3 = down3
        for block in self.level3:
            out3 = block(out3)
        level3 = self.b3(torch.cat([down3, out3], 1))
        return level1, level2, level3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x)[2])  # 1/8-resolution logits (ESPNet-C)


def _up2(channels: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(channels, channels, 2, stride=2, bias=False)


class ESPNet(nn.Module):
    """ESPNet: the ESPNet-C encoder plus the light decoder that upsamples 1/8 -> 1/4 -> 1/2 -> 1."""

    def __init__(self, classes: int = 12, p: int = 2, q: int = 8):
        super().__init__()
        self.encoder = ESPNetEncoder(classes, p, q)
        self.level3_C = Conv(128 + 3, classes, 1)
        self.br = nn.BatchNorm2d(classes, eps=_BN_EPS)
        self.conv = ConvBNAct(19 + classes, classes, 3)
        self.up_l3 = nn.Sequential(_up2(classes))
        self.combine_l2_l3 = nn.Sequential(BNAct(2 * classes), ESPBlock(2 * classes, classes, residual=False))
        self.up_l2 = nn.Sequential(_up2(classes), BNAct(classes))
        self.classifier = _up2(classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        level1, level2, level3 = self.encoder.features(x)
        coarse = self.up_l3(self.br(self.encoder.classifier(level3)))          # 1/8 -> 1/4
        merged = self.combine_l2_l3(torch.cat([self.level3_C(level2), coarse], 1))
        fine = self.conv(torch.cat([self.up_l2(merged), level1], 1))          # 1/4 -> 1/2
        return self.classifier(fine)                                           # 1/2 -> 1


def espnet(classes: int = 12, p: int = 2, q: int = 8) -> ESPNet:
    """ESPNet with `p` ESP blocks at 1/4 and `q` at 1/8 (the CamVid checkpoint: classes=12, p=2, q=8)."""
    return ESPNet(classes, p, q)
