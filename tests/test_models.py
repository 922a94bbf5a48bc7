import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from stl10_lightning.common.errors import UserError
from stl10_lightning.models import resnet18
from stl10_lightning.train import CONFIG_DIR


@pytest.mark.parametrize("name", ["tiny", "resnet9", "resnet18", "resnet50"])
@pytest.mark.parametrize("size", [32, 96])
def test_every_backbone_config_gives_features_of_its_dimension(name, size):
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        backbone = instantiate(compose("train", overrides=[f"backbone={name}"]).backbone).eval()
    with torch.no_grad():
        features = backbone(torch.randn(2, 3, size, size))
    assert features.shape == (2, backbone.feature_dim)


@pytest.mark.parametrize(("stem", "last_stage"), [("imagenet", 3), ("conv3_pool", 6), ("conv3", 12)])
def test_resnet_stems_set_the_last_stage_resolution(stem, last_stage):
    net = resnet18(stem)
    trunk = torch.nn.Sequential(*list(net.children())[:-2])  # up to layer4, before pooling
    assert trunk(torch.randn(1, 3, 96, 96)).shape[-1] == last_stage


def test_unknown_stem_is_refused():
    with pytest.raises(UserError, match="backbone.stem='big' is not a stem"):
        resnet18("big")
