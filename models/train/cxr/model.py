"""CxrNet: plain VGG-style CNN (3x3 conv + BN + ReLU, no depthwise, no residual adds).

stem conv3x3 s2 1->16, stages [32, 64, 128, 256] each conv3x3 s2 + conv3x3 s1,
dropout, 1x1 conv -> 4 channels = `cam`, global average pool -> `logits` (= mean(cam)).
`last_stride=1` keeps the last stage at the third stage's resolution: a 10x10 CAM at 160 px
instead of 5x5 (issue 20, item 5), for 155 M MACs instead of 89 M.
"""
from __future__ import annotations

import torch
import torch.nn as nn

WIDTHS = (32, 64, 128, 256)


def cbr(cin, cout, stride):
    return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class CxrNet(nn.Module):
    def __init__(self, n_classes=4, stem=16, widths=WIDTHS, dropout=0.2, last_stride=2):
        super().__init__()
        layers = cbr(1, stem, 2)
        c = stem
        for i, w in enumerate(widths):
            layers += cbr(c, w, last_stride if i == len(widths) - 1 else 2) + cbr(w, w, 1)
            c = w
        self.features = nn.Sequential(*layers)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Conv2d(c, n_classes, 1, bias=True)
        self.n_feat = c
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.normal_(self.head.weight, std=0.01)

    def forward(self, x):
        f = self.features(x)
        cam = self.head(self.drop(f))
        logits = cam.mean(dim=(2, 3))
        return logits, cam

    def pooled_features(self, x):
        return self.features(x).mean(dim=(2, 3))


class ExportNet(nn.Module):
    """BN-folded copy for ONNX export: outputs (logits, cam)."""

    def __init__(self, net: CxrNet):
        super().__init__()
        from torch.nn.utils.fusion import fuse_conv_bn_eval
        net = net.eval()
        mods = list(net.features)
        fused = []
        i = 0
        while i < len(mods):
            m = mods[i]
            if isinstance(m, nn.Conv2d) and i + 1 < len(mods) and isinstance(mods[i + 1], nn.BatchNorm2d):
                fused.append(fuse_conv_bn_eval(m, mods[i + 1]))
                i += 2
            elif isinstance(m, nn.ReLU):
                fused.append(nn.ReLU(inplace=False))
                i += 1
            else:
                fused.append(m)
                i += 1
        self.features = nn.Sequential(*fused).eval()
        self.head = net.head.eval()
        self.gap = nn.AdaptiveAvgPool2d(1)

    def forward(self, image):
        cam = self.head(self.features(image))
        logits = torch.flatten(self.gap(cam), 1)
        return logits, cam


def count_macs(size: int, stem=16, widths=WIDTHS, n_classes=4, last_stride=2):
    s = size
    macs = 0
    params = 0
    s = (s + 1) // 2
    macs += 9 * 1 * stem * s * s
    params += 9 * stem
    c = stem
    for i, w in enumerate(widths):
        if i < len(widths) - 1 or last_stride == 2:
            s = (s + 1) // 2
        macs += 9 * c * w * s * s + 9 * w * w * s * s
        params += 9 * c * w + 9 * w * w + 4 * w
        c = w
    macs += c * n_classes * s * s
    params += c * n_classes + n_classes + 4 * stem
    return macs, params, s
