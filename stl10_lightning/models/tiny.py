"""A four-convolution network for tests and CPU demos: seconds per epoch on small images."""

from torch import nn


class TinyNet(nn.Module):
    def __init__(self, width: int = 32):
        super().__init__()

        def block(c_in, c_out, stride):
            return [nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)]

        # Three stride-2 stages: at 32 px the receptive field (~30 px) spans a whole shape.
        self.features = nn.Sequential(
            *block(3, width, 1),
            *block(width, 2 * width, 2),
            *block(2 * width, 4 * width, 2),
            *block(4 * width, 4 * width, 2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.feature_dim = 4 * width

    def forward(self, x):
        return self.features(x)
