"""The table's rows: finished runs of one stage, mode, data and recipe, averaged over their seeds, each
compared with the supervised runs it can be compared with."""

import statistics
from collections import Counter
from dataclasses import dataclass

from stl10_lightning.report.collect import Run
from stl10_lightning.report.recipe import baseline_key, differences, headline, recipe

# The stages that end with a test accuracy, in table order; Barlow Twins pretraining has none.
METHODS = {"supervised": "supervised", "linear_probe": "linear probe", "pseudo_label": "pseudo-label"}
# The stages whose Δ also needs the supervised training recipe: the probe trains a head on a frozen
# backbone, so only data and backbone are shared with the supervised stage.
TRAINS_LIKE_SUPERVISED = {"pseudo_label"}


@dataclass(frozen=True)
class Summary:
    mean: float | None  # None: no run has the value (older runs miss some keys)
    std: float | None  # sample std (n - 1 denominator); None with fewer than two values

    @classmethod
    def of(cls, values: list, scale: float = 1.0) -> "Summary":
        present = [float(value) * scale for value in values if isinstance(value, int | float)]
        return cls(
            mean=statistics.fmean(present) if present else None,
            std=statistics.stdev(present) if len(present) > 1 else None,
        )


@dataclass(frozen=True)
class Delta:
    """Accuracy points against the matching supervised runs."""

    mean: float
    std: float | None  # sample std of the per-seed differences; None unpaired or with one pair
    pairs: int  # seeds both sides ran; 0: no common seed, the difference of the two means


@dataclass(frozen=True)
class Row:
    stage: str
    mode: str | None
    recipe: str | None  # A, B, ...: one per recipe; None: config.yaml unreadable, recipe unknown
    differs: tuple[str, ...]  # "key=value" where this recipe differs from the others of its stage and mode
    headline: str | None  # the recipe in a few words (recipe.headline); None: config.yaml unreadable
    backbone: str | None
    data_root: str | None
    labeled: int | None
    ratio: float | None
    threshold: float | None
    seeds: int  # distinct seeds; each unseeded run counts as one
    accuracy: Summary  # test/acc, in %
    macro_f1: Summary  # test/f1, in %
    unlabeled_used: Summary
    kept: Summary
    steps: Summary  # optimizer steps
    epochs: Summary
    delta: Delta | None  # None: a supervised row, or no supervised run to compare with

    @property
    def method(self) -> str:
        return METHODS[self.stage]


@dataclass(frozen=True)
class Duplicate:
    run: Run  # left out of the table
    kept: Run  # the newest finished run of the same setting and seed, which counts instead


def recipe_key(run: Run) -> tuple:
    """Equal for runs of one recipe; a run whose config is unreadable is a recipe of its own."""
    if run.settings is None:
        return ("unreadable config.yaml", str(run.folder))
    return tuple(sorted(recipe(run.settings).items(), key=lambda item: item[0]))


def _setting(run: Run) -> tuple:
    """What runs of one row share: all but the seed."""
    return run.stage, run.metrics.get("mode"), run.data_root, recipe_key(run), run.metrics.get("ratio")


def drop_duplicates(finished: list[Run]) -> tuple[list[Run], list[Duplicate]]:
    """One run per setting and seed, so that a rerun neither counts as another seed nor shrinks the std.
    The newest by metrics.json's mtime counts: a rerun is usually the fix of the earlier one."""
    newest_first = sorted(finished, key=lambda run: (run.finished_at or 0.0, str(run.folder)), reverse=True)
    kept: dict[tuple, Run] = {}
    counted, duplicates = [], []
    for run in newest_first:
        key = (_setting(run), run.seed)
        if run.seed is None or run.stage not in METHODS:  # unseeded runs are never repeats
            counted.append(run)
        elif key in kept:
            duplicates.append(Duplicate(run=run, kept=kept[key]))
        else:
            kept[key] = run
            counted.append(run)
    return counted, sorted(duplicates, key=lambda duplicate: duplicate.run.folder)


def _none_last(value) -> tuple:
    return value is None, value if value is not None else 0


def _accuracy(runs: list[Run]) -> Summary:
    return Summary.of([run.metrics.get("test/acc") for run in runs], scale=100)


def _accuracy_by_seed(runs: list[Run]) -> dict[int, float]:
    """Mean accuracy (%) per seed; a seed has several runs only in a baseline pooled from several recipes."""
    by_seed: dict[int, list] = {}
    for run in runs:
        if run.seed is not None:
            by_seed.setdefault(run.seed, []).append(run.metrics.get("test/acc"))
    means = {seed: Summary.of(values, scale=100).mean for seed, values in by_seed.items()}
    return {seed: mean for seed, mean in means.items() if mean is not None}


def _delta(runs: list[Run], baseline: list[Run]) -> Delta | None:
    """Paired by seed where both sides ran the same seeds (the seed's own luck cancels), else the
    difference of the means; None without a baseline."""
    own, base = _accuracy_by_seed(runs), _accuracy_by_seed(baseline)
    differences = [own[seed] - base[seed] for seed in sorted(own.keys() & base.keys())]
    if differences:
        std = statistics.stdev(differences) if len(differences) > 1 else None
        return Delta(mean=statistics.fmean(differences), std=std, pairs=len(differences))
    own_mean, base_mean = _accuracy(runs).mean, _accuracy(baseline).mean
    if own_mean is None or base_mean is None:
        return None
    return Delta(mean=own_mean - base_mean, std=None, pairs=0)


def _baselines(counted: list[Run]) -> dict[tuple, list[Run]]:
    """Supervised runs by what a row must share with them, for rows of either kind."""
    baselines: dict[tuple, list[Run]] = {}
    for run in counted:
        if run.stage == "supervised" and run.settings is not None:
            for with_training in (True, False):
                key = (with_training, baseline_key(run.settings, with_training))
                baselines.setdefault(key, []).append(run)
    return baselines


def _baseline_of(runs: list[Run], baselines: dict[tuple, list[Run]]) -> list[Run]:
    first = runs[0]  # runs of one row share their recipe, so one stands for all
    if first.stage == "supervised" or first.settings is None:
        return []
    with_training = first.stage in TRAINS_LIKE_SUPERVISED
    return baselines.get((with_training, baseline_key(first.settings, with_training)), [])


def _recipe_names(count: int) -> list[str]:
    """A, ..., Z, AA, AB, ...: short enough for a table column."""
    names = []
    for index in range(1, count + 1):
        name = ""
        while index:
            index, rest = divmod(index - 1, 26)
            name = chr(ord("A") + rest) + name
        names.append(name)
    return names


def _recipe_ids(
    groups: dict[tuple, list[Run]], ordered: list[tuple]
) -> dict[tuple, tuple[str, tuple[str, ...]]]:
    """Recipe key -> (id, where it differs from the other recipes of its stage and mode)."""
    recipes: dict[tuple, dict[tuple, dict]] = {}  # (stage, mode) -> recipe key -> recipe, in row order
    for setting in ordered:
        stage, mode, _, key, _ = setting
        if groups[setting][0].settings is not None:
            recipes.setdefault((stage, mode), {}).setdefault(key, recipe(groups[setting][0].settings))
    keys = [key for same_mode in recipes.values() for key in same_mode]
    names = dict(zip(keys, _recipe_names(len(keys)), strict=True))
    ids = {}
    for same_mode in recipes.values():
        for key, differs in zip(same_mode, differences(list(same_mode.values())), strict=True):
            ids[key] = (names[key], differs)
    return ids


def _order(setting: tuple, runs: list[Run], first_finished: dict[tuple, float]) -> tuple:
    """Data, stage, mode, backbone, labeled count, then recipes in the order they were first run, each
    by ratio."""
    stage, mode, root, key, ratio = setting
    first = runs[0]
    keys = (root, list(METHODS).index(stage), mode, first.backbone, first.metrics.get("labeled"))
    return (*(_none_last(value) for value in keys), first_finished[key], _none_last(ratio))


def _first_finished(counted: list[Run]) -> dict[tuple, float]:
    """Recipe key -> when its first run finished: recipes are lettered in the order they were run."""
    first: dict[tuple, float] = {}
    for run in counted:
        key = recipe_key(run)
        first[key] = min(first.get(key, float("inf")), run.finished_at or 0.0)
    return first


def _row(
    setting: tuple, runs: list[Run], recipe_id: tuple[str, tuple[str, ...]] | None, baseline: list[Run]
) -> Row:
    def summary(key: str, scale: float = 1.0) -> Summary:
        return Summary.of([run.metrics.get(key) for run in runs], scale)

    stage, mode, root, _, ratio = setting
    name, differs = recipe_id or (None, ())
    return Row(
        stage=stage,
        mode=mode,
        recipe=name,
        differs=differs,
        headline=headline(runs[0].settings) if runs[0].settings is not None else None,
        backbone=runs[0].backbone,
        data_root=root,
        labeled=runs[0].metrics.get("labeled"),
        ratio=ratio,
        threshold=runs[0].metrics.get("threshold"),
        seeds=len(runs),  # duplicates are gone: one run per seed, plus each unseeded run
        accuracy=_accuracy(runs),
        macro_f1=summary("test/f1", scale=100),
        unlabeled_used=summary("unlabeled_used"),
        kept=summary("kept"),
        steps=summary("steps"),
        epochs=summary("epochs"),
        delta=_delta(runs, baseline) if baseline else None,
    )


def build_rows(counted: list[Run]) -> list[Row]:
    """One row per stage, mode, data, recipe and ratio of the tabled stages; `counted` holds no duplicates."""
    groups: dict[tuple, list[Run]] = {}
    for run in counted:
        if run.stage in METHODS:
            groups.setdefault(_setting(run), []).append(run)
    first_finished = _first_finished(counted)
    ordered = sorted(groups, key=lambda setting: _order(setting, groups[setting], first_finished))
    ids = _recipe_ids(groups, ordered)
    baselines = _baselines(counted)
    return [
        _row(setting, groups[setting], ids.get(setting[3]), _baseline_of(groups[setting], baselines))
        for setting in ordered
    ]


def not_tabled(finished: list[Run]) -> Counter:
    """Finished runs of stages with no test accuracy (Barlow Twins pretraining), by stage."""
    return Counter(str(run.stage) for run in finished if run.stage not in METHODS)
