"""CGNet (Wu et al., "CGNet: A Light-weight Context Guided Network for Semantic Segmentation", TIP 2020)
in plain PyTorch, shaped to load wutianyiRosun/CGNet's CamVid checkpoint (CGNet_M3N21) strictly.

Attribute names mirror the checkpoint's keys. Input: an (N, 3, H, W) float batch, the image in RGB
order minus the train+val mean listed in BGR order, no scaling (an upstream quirk we keep: the
model was trained that way). H and W should be multiples of 8.

Output: like upstream's forward, the 1/8-resolution logits are bilinearly upsampled
(align_corners=False) back to the input size, so `model(x)` is (N, classes, H, W). Build with
`upsample=False` to get the raw (N, classes, H/8, W/8) classifier output instead.
"""
from __future__ import annotations

import torch
from torch import nn

_BN_EPS = 1e-3  # upstream's BatchNorm eps (not PyTorch's default 1e-5)


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
    """BatchNorm -> PReLU."""

    def __init__(self, channels: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, eps=_BN_EPS)
        self.act = nn.PReLU(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(x))


class Conv(nn.Module):
    """Bias-free conv in a wrapper (weights named `<name>.conv.weight`); `depthwise` groups per channel."""

    def __init__(self, c_in: int, c_out: int, k: int, dilation: int = 1, depthwise: bool = False):
        super().__init__()
        pad = (k - 1) // 2 * dilation
        groups = c_in if depthwise else 1
        self.conv = nn.Conv2d(c_in, c_out, k, 1, pad, dilation=dilation, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class GlobalContext(nn.Module):
    """f_glo: squeeze-and-excitation style channel re-weighting from the global average."""

    def __init__(self, channels: int, reduction: int):
        super().__init__()
        hidden = channels // reduction
        self.fc = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.fc(x.mean((2, 3)))
        return x * weights[:, :, None, None]


class CGBlockDown(nn.Module):
    """Down-sampling CG block: 3x3 stride-2 conv to `c_out`, then local (3x3 depthwise) and surrounding
    (dilated 3x3 depthwise) features, BN-PReLU on their concat, 1x1 reduce back to `c_out`, f_glo."""

    def __init__(self, c_in: int, c_out: int, dilation: int, reduction: int):
        super().__init__()
        self.conv1x1 = ConvBNAct(c_in, c_out, 3, 2)  # named conv1x1 upstream although it is 3x3/2
        self.F_loc = Conv(c_out, c_out, 3, depthwise=True)
        self.F_sur = Conv(c_out, c_out, 3, dilation=dilation, depthwise=True)
        self.bn = nn.BatchNorm2d(2 * c_out, eps=_BN_EPS)
        self.act = nn.PReLU(2 * c_out)
        self.reduce = Conv(2 * c_out, c_out, 1)
        self.F_glo = GlobalContext(c_out, reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1x1(x)
        joint = self.act(self.bn(torch.cat([self.F_loc(x), self.F_sur(x)], 1)))
        return self.F_glo(self.reduce(joint))


class CGBlock(nn.Module):
    """CG block: 1x1 conv to half width, local + surrounding depthwise features, BN-PReLU, f_glo,
    then a residual add of the input."""

    def __init__(self, channels: int, dilation: int, reduction: int):
        super().__init__()
        half = channels // 2
        self.conv1x1 = ConvBNAct(channels, half, 1)
        self.F_loc = Conv(half, half, 3, depthwise=True)
        self.F_sur = Conv(half, half, 3, dilation=dilation, depthwise=True)
        self.bn_prelu = BNAct(channels)
        self.F_glo = GlobalContext(channels, reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        reduced = self.conv1x1(x)
        joint = self.bn_prelu(torch.cat([self.F_loc(reduced), self.F_sur(reduced)], 1))
        return x + self.F_glo(joint)


def _downsample_image(x: torch.Tensor, times: int) -> torch.Tensor:
    """Input injection: the image average-pooled (3x3, stride 2, pad 1) `times` times."""
    for _ in range(times):
        x = nn.functional.avg_pool2d(x, 3, stride=2, padding=1)
    return x


class CGNet(nn.Module):
    """CGNet_M{M}N{N}: a 3-conv stem (1/2), M CG blocks at 1/4 (dilation 2), N at 1/8 (dilation 4)."""

    def __init__(self, classes: int = 11, M: int = 3, N: int = 21, upsample: bool = True):
        super().__init__()
        self.upsample = upsample
        self.level1_0 = ConvBNAct(3, 32, 3, 2)
        self.level1_1 = ConvBNAct(32, 32, 3)
        self.level1_2 = ConvBNAct(32, 32, 3)
        self.b1 = BNAct(32 + 3)
        self.level2_0 = CGBlockDown(32 + 3, 64, dilation=2, reduction=8)
        self.level2 = nn.ModuleList(CGBlock(64, dilation=2, reduction=8) for _ in range(M - 1))
        self.bn_prelu_2 = BNAct(128 + 3)
        self.level3_0 = CGBlockDown(128 + 3, 128, dilation=4, reduction=16)
        self.level3 = nn.ModuleList(CGBlock(128, dilation=4, reduction=16) for _ in range(N - 1))
        self.bn_prelu_3 = BNAct(256)
        self.classifier = nn.Sequential(Conv(256, classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stem = self.level1_2(self.level1_1(self.level1_0(x)))
        stage1 = self.b1(torch.cat([stem, _downsample_image(x, 1)], 1))
        down2 = self.level2_0(stage1)
        out2 = down2
        for block in self.level2:
            out2 = block(out2)
        stage2 = self.bn_prelu_2(torch.cat([out2, down2, _downsample_image(x, 2)], 1))
        down3 = self.level3_0(stage2)
        out3 = down3
        for block in self.level3:
            out3 = block(out3)
        logits = self.classifier(self.bn_prelu_3(torch.cat([down3, out3], 1)))
        if not self.upsample:
            return logits
        return nn.functional.interpolate(logits, size=x.shape[2:], mode="bilinear", align_corners=False)


def cgnet(classes: int = 11, M: int = 3, N: int = 21, upsample: bool = True) -> CGNet:
    """CGNet with M blocks in stage 2 and N in stage 3 (the CamVid checkpoint: classes=11, M=3, N=21).

    `upsample=True` (upstream's behaviour) returns logits at input size; False returns them at 1/8."""
    return CGNet(classes, M, N, upsample)
