"""A run's recipe: its resolved config less what cannot change the result; what a supervised baseline must
share with a row; and how the recipes of one stage and mode differ, for the legend.

Keys are dotted paths of the flattened config (`trainer.max_epochs`); `*` stands for any one node name.
"""

from fnmatch import fnmatchcase

# Left out of the recipe, each group for its own reason (a pattern covers the keys under it too):
IGNORED = (
    # the seed: the one thing a row averages over
    "seed",
    # where a run reads or writes: every run has its own folder; data.root is the row's "data" column
    # (logger.*.save_dir goes with the whole logger node below)
    "run_dir",
    "ckpt_path",
    "trainer.default_root_dir",
    "callbacks.*.dirpath",
    "data.root",
    # what is logged and how often: the same weights come out either way
    "logger",
    "callbacks.progress_bar",
    "callbacks.lr_monitor",
    "callbacks.epoch_log",
    "callbacks.*.every_n_train_steps",
    "trainer.log_every_n_steps",
    "trainer.enable_progress_bar",
    "model.monitor_every_n_epochs",
    "model.embedding_points",
    # how this machine loads data: speed, not results
    "data.num_workers",
    "data.pin_memory",
    "data.eval_batch_size",
    "data.download",
    # the ratio has its own table column and is the figure's x axis: it splits rows, not recipes
    "ratio",
    "data.unlabeled_ratio",
)

# Keys naming an earlier run or file: which one it is makes no other recipe (two teacher runs of one
# recipe), whether there is one does (pretrained weights against scratch). Kept as "set" or "unset".
POINTERS = (
    "probe.backbone",
    "model.source",
    "pseudo.teacher",
    "model.teacher",
    "model.modes.offline.teacher",  # run folders written before the modes became the group `pseudo`
    "pseudo.init_backbone",
    "model.init_backbone",
    "model.modes.online.init_backbone",
)

# What a row's supervised baseline must share with it. Data: the same images, split and size.
BASELINE_DATA = (
    "data.root",
    "data.image_size",
    "data.val_size",
    "data.fold",
    "data.labeled_count",
    "data.seed",
)
# The network: every key of the backbone node, not only its class (a ResNet-18's stem changes it).
BASELINE_BACKBONE = "backbone"
# The training recipe a pseudo-label student shares with the supervised stage; nodes compared whole.
BASELINE_TRAINING = (
    "model.optimizer",
    "trainer.max_epochs",
    "data.batch_size",
    "model.augment",
    "model.schedule",
    "model.warmup_epochs",
    "model.label_smoothing",
    "model.ema",
    "trainer.precision",
)

ABSENT = "—"  # a key an older run's config lacks


def _matches(key: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatchcase(key, pattern) or fnmatchcase(key, f"{pattern}.*") for pattern in patterns)


def recipe(settings: dict) -> dict[str, object]:
    """The run's flattened config less IGNORED, with each of POINTERS reduced to "set" or "unset"."""
    kept = {key: value for key, value in settings.items() if not _matches(key, IGNORED)}
    return {
        key: ("unset" if value is None else "set") if _matches(key, POINTERS) else value
        for key, value in kept.items()
    }


def _node(settings: dict, name: str) -> tuple:
    """The entries at and under `name`, in key order; a key an older config lacks compares as null."""
    entries = [(key, value) for key, value in settings.items() if key == name or key.startswith(f"{name}.")]
    return tuple(sorted(entries, key=lambda entry: entry[0])) or ((name, None),)


def baseline_key(settings: dict, with_training: bool) -> tuple:
    """Equal for a run and the supervised runs that are its baseline: data and backbone, and the
    training recipe unless the run trains no network of its own (the linear probe)."""
    names = (*BASELINE_DATA, BASELINE_BACKBONE, *(BASELINE_TRAINING if with_training else ()))
    return tuple(_node(settings, name) for name in names)


def shown(value: object) -> str:
    """A config value as the user would write it on the command line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return "[" + ", ".join(shown(item) for item in value) + "]"
    return str(value)


def _preferred(key: str) -> tuple:
    """Of two keys that always agree, the one to show: not the stage's `model.` copy, then the shorter."""
    return key.startswith("model."), len(key), key


def _copies(keys: list[str], recipes: list[dict]) -> set[str]:
    """Keys that repeat another key of the same name in every recipe (model.image_size: data.image_size),
    so that the legend names each setting once."""
    columns = {key: [recipe.get(key, ABSENT) for recipe in recipes] for key in keys}
    return {
        key
        for key in keys
        for other in keys
        if _preferred(other) < _preferred(key)
        and other.rsplit(".", 1)[-1] == key.rsplit(".", 1)[-1]
        and columns[other] == columns[key]
    }


def differences(recipes: list[dict]) -> list[tuple[str, ...]]:
    """For each recipe, "key=value" for every key where the recipes disagree, in config order."""
    keys = list(dict.fromkeys(key for recipe in recipes for key in recipe))
    varying = [key for key in keys if len({recipe.get(key, ABSENT) for recipe in recipes}) > 1]
    copies = _copies(varying, recipes)
    named = [key for key in varying if key not in copies]
    return [tuple(f"{key}={shown(recipe.get(key, ABSENT))}" for key in named) for recipe in recipes]


def headline(settings: dict) -> str:
    """The recipe in a few words, so that a reader tells one training recipe from another (FixMatch's
    from the supervised one) without opening config.yaml: optimizer and rate, epochs, batch, image side,
    and the weight average and mode settings where they apply."""
    optimizer = str(settings.get("optimizer._target_", "?")).rsplit(".", 1)[-1]
    reference = settings.get("optimizer.lr_reference_batch")
    epochs = settings.get("trainer.max_epochs")
    parts = [
        f"{optimizer} lr {shown(settings.get('optimizer.lr'))}"
        + (f" per {reference} images" if reference else ""),
        f"{shown(epochs)} epoch{'' if epochs == 1 else 's'}",
        f"batch {shown(settings.get('data.batch_size'))}",
        f"{shown(settings.get('data.image_size'))} px",
    ]
    if settings.get("model.ema") is not None:
        parts.append(f"EMA {shown(settings['model.ema'])}")
    online = str(settings.get("model._target_")).endswith("OnlinePseudoLabelModule")
    if online or settings.get("model.mode") == "online":  # model.mode: folders from before the group `pseudo`
        parts.append(f"mu {shown(settings.get('pseudo.mu'))}")
    if settings.get("trainer.precision") not in (None, "32-true"):
        parts.append(str(settings["trainer.precision"]))
    return ", ".join(parts)
