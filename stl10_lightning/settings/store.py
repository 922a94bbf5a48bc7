"""Hydra's ConfigStore entries for the schema: each YAML file in conf/ names one in its defaults list."""

from hydra.core.config_store import ConfigStore

from stl10_lightning.settings import schema

# Under schema/ so that they never show up as options of the groups users choose from.
NODES = {
    "run": schema.Run,
    "data": schema.Data,
    "synthetic_data": schema.SyntheticData,
    "torchvision_resnet": schema.TorchvisionResNet,
    "resnet9": schema.ResNet9,
    "tiny_net": schema.TinyNet,
    "sgd": schema.SGD,
    "adam": schema.Adam,
    "lars": schema.LARS,
    "trainer": schema.Trainer,
    "supervised_model": schema.SupervisedModel,
    "linear_probe_model": schema.LinearProbeModel,
    "offline_pseudo_label_model": schema.OfflinePseudoLabelModel,
    "online_pseudo_label_model": schema.OnlinePseudoLabelModel,
    "barlow_twins_model": schema.BarlowTwinsModel,
    "probe": schema.Probe,
    "offline_pseudo": schema.OfflinePseudo,
    "online_pseudo": schema.OnlinePseudo,
}


def register() -> None:
    """Idempotent: storing a node again replaces it."""
    store = ConfigStore.instance()
    for name, node in NODES.items():
        store.store(group="schema", name=name, node=node)
