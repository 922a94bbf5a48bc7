"""ResNet-9: the report's "ResNet with 9 conv blocks, dropout and batch norm".

Read as the widely used ResNet-9 (Myrtle.ai's DAWNBench CIFAR-10 net): conv-BN-ReLU blocks, two
residual pairs, max-pooling between stages. Global max-pooling at the end makes it work at any input
size; dropout sits on the pooled features, so it only acts while training.
"""

from torch import nn


def conv_bn(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)
    )


class Residual(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(conv_bn(channels, channels), conv_bn(channels, channels))

    def forward(self, x):
        return x + self.body(x)


class ResNet9(nn.Module):
    def __init__(self, width: int = 64, dropout: float = 0.2):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            conv_bn(3, w),
            conv_bn(w, 2 * w),
            nn.MaxPool2d(2),
            Residual(2 * w),
            conv_bn(2 * w, 4 * w),
            nn.MaxPool2d(2),
            conv_bn(4 * w, 8 * w),
            nn.MaxPool2d(2),
            Residual(8 * w),
            nn.AdaptiveMaxPool2d(1),
            nn.Flatten(),
            nn.Dropout(dropout),
        )
        self.feature_dim = 8 * w

    def forward(self, x):
        return self.features(x)
