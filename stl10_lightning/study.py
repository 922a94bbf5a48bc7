"""The whole study in one command: supervised, Barlow Twins, linear probe, the pseudo-label ratio sweep in
each mode, then the results table. Each step finds the previous step's run by its folder under one study
folder.

    python -m stl10_lightning.study [--out DIR] [--ratios 0.4,1,2,10] [--modes offline,online] [OVERRIDES...]

OVERRIDES (e.g. `experiment=demo`, `data.root=/datasets/stl10`) go to every stage, except pseudo.* and
probe.*, which go to the stages (and pseudo-label modes) that have them. Without an experiment,
the online steps use FixMatch's recipe (experiment=fixmatch_recipe), and a supervised run with the same
recipe is added as their baseline; with one, the experiment's own settings apply to every step.

Every step's settings are checked before the first step runs. Finished steps are skipped and interrupted
ones resumed from their last checkpoint, so rerunning with the same --out continues a study.
"""

import argparse
import math
import subprocess
import sys
import time
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from stl10_lightning import settings
from stl10_lightning.common.errors import OneLineArgumentParser, UserError
from stl10_lightning.common.output_paths import run_folder_around
from stl10_lightning.launch import startup
from stl10_lightning.report.cli import report
from stl10_lightning.settings.schema import PSEUDO_MODES, own_settings
from stl10_lightning.train import CONFIG_DIR

ONLINE_RECIPE = "experiment=fixmatch_recipe"  # FixMatch's recipe at the study's budget (conf/experiment/)
STAGE_ONLY = {"pseudo.": "stage=pseudo_label", "probe.": "stage=linear_probe"}  # keys only these stages have


def _applies(override: str, arguments: list[str]) -> bool:
    key = override.split("=", 1)[0]
    if any(
        key.lstrip("+~").startswith(prefix) and stage not in arguments for prefix, stage in STAGE_ONLY.items()
    ):
        return False
    mode = next((argument.split("=", 1)[1] for argument in arguments if argument.startswith("pseudo=")), None)
    # A setting of one mode only goes to that mode's steps; one added with + goes to every mode's.
    return mode is None or not key.startswith("pseudo.") or key.removeprefix("pseudo.") in own_settings(mode)


def for_step(overrides: list[str], arguments: list[str]) -> list[str]:
    """The study's overrides that apply to the step with these train.py `arguments`."""
    return [override for override in overrides if _applies(override, arguments)]


def _uses_an_experiment(overrides: list[str]) -> bool:
    return any(override.lstrip("+~").startswith("experiment=") for override in overrides)


def pseudo_label_step(out: Path, mode: str, ratio: str, recipe: list[str]) -> tuple[Path, list[str]]:
    folder = out / "pseudo_label" / mode / f"ratio_{ratio}"
    # The offline mode's teacher is the study's supervised run; the online mode needs none, but has its
    # own training recipe (`recipe`, empty when the study's experiment gives every step its settings).
    own = [f"pseudo.teacher={out / 'supervised'}"] if mode == "offline" else recipe
    return folder, ["stage=pseudo_label", f"pseudo={mode}", f"ratio={ratio}", *own]


def steps(
    out: Path, ratios: str, modes: str = "offline", overrides: list[str] = ()
) -> list[tuple[Path, list[str]]]:
    """(run folder, train.py arguments without the folder) for each step, in order."""
    online_recipe = [] if _uses_an_experiment(list(overrides)) else [ONLINE_RECIPE]
    mode_list = modes.split(",")
    baseline = (
        [(out / "supervised_online_recipe", ["stage=supervised", *online_recipe])]
        if online_recipe and "online" in mode_list
        else []
    )
    return [
        (out / "supervised", ["stage=supervised"]),
        (out / "barlow_twins", ["stage=barlow_twins"]),
        (out / "linear_probe", ["stage=linear_probe", f"probe.backbone={out / 'barlow_twins'}"]),
        *baseline,
        *[
            pseudo_label_step(out, mode, ratio, online_recipe)
            for mode in mode_list
            for ratio in ratios.split(",")
        ],
    ]


def check_arguments(out: Path, ratios: str, modes: str, overrides: list[str]) -> None:
    """The study's own arguments, refused with one line before anything runs."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder for the study")
    run = run_folder_around(out)
    if run is not None:
        raise UserError(
            f"--out {out} is inside the run folder {run}, and a later command never changes a run; give a "
            "folder outside it"
        )
    for ratio in ratios.split(","):
        try:
            value = float(ratio)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value > 0):
            raise UserError(
                f"--ratios {ratios}: {ratio!r} is not a number > 0; give unlabeled images per labeled one, "
                "comma-separated, e.g. --ratios 0.4,1,2,10"
            )
    chosen = next((override for override in overrides if override.lstrip("+~").startswith("pseudo=")), None)
    if chosen is not None:
        raise UserError(
            f"{chosen}: the study runs each mode of --modes; give --modes {chosen.split('=', 1)[1]}"
        )
    unknown = [mode for mode in modes.split(",") if mode not in PSEUDO_MODES]
    if unknown:
        raise UserError(
            f"--modes {modes}: {unknown[0]!r} is not a mode; choose from {', '.join(PSEUDO_MODES)}"
        )


def check_steps(study_steps: list[tuple[Path, list[str]]], overrides: list[str]) -> None:
    """Compose every step's config as train.py will, check its settings and read its data, so that a bad
    value stops the study now rather than hours in, after the steps before it."""
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        for folder, arguments in study_steps:
            try:
                cfg = compose(
                    "train", overrides=[*arguments, *for_step(overrides, arguments), f"run_dir={folder}"]
                )
                settings.check_settings(cfg)
                startup.check_data(instantiate(cfg.data))
            except Exception as err:
                message = str(err) if isinstance(err, UserError) else settings.one_line(err)
                if message is None:
                    raise
                raise UserError(
                    f"{message} (in the study's step {folder.name}: {' '.join(arguments)})"
                ) from err


def _resume_argument(folder: Path) -> list[str]:
    """An interrupted step continues from its last checkpoint; one that saved none cannot."""
    if not (folder / "config.yaml").exists():
        return []
    last = folder / "checkpoints" / "last.ckpt"
    if not last.is_file():
        raise UserError(
            f"{folder} holds a step that stopped before its first checkpoint; delete that folder and rerun "
            "the study to start the step again"
        )
    return [f"ckpt_path={last}"]


def run_study(out: Path, ratios: str, modes: str, overrides: list[str]) -> None:
    check_arguments(out, ratios, modes, overrides)
    study_steps = steps(out, ratios, modes, overrides)
    check_steps(study_steps, overrides)
    for folder, arguments in study_steps:
        if (folder / "metrics.json").is_file():
            print(f"study: {folder} already finished, skipped", file=sys.stderr)
            continue
        step_overrides = [*for_step(overrides, arguments), *_resume_argument(folder)]
        command = [
            sys.executable,
            "-m",
            "stl10_lightning.train",
            *arguments,
            *step_overrides,
            f"hydra.run.dir={folder}",
        ]
        print(f"study: {' '.join(command[1:])}", file=sys.stderr, flush=True)
        started = time.monotonic()
        finished = subprocess.run(command)
        if finished.returncode != 0:
            raise UserError(
                f"the study stopped at {folder} (exit {finished.returncode}); rerun the same command with "
                f"--out {out} to continue from there"
            )
        print(f"study: {folder.relative_to(out)} took {time.monotonic() - started:.0f} s", file=sys.stderr)
    report([out], out / "report")


def main(argv: list[str] | None = None) -> None:
    parser = OneLineArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--out", type=Path, default=Path("outputs/study") / time.strftime("%Y-%m-%d_%H-%M-%S")
    )
    parser.add_argument("--ratios", default="0.4,1,2,10", help="labeled:unlabeled ratios of the sweep")
    parser.add_argument(
        "--modes", default="offline,online", help="pseudo-label modes (the group pseudo=) to sweep"
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every stage")
    args = parser.parse_intermixed_args(argv)  # overrides may come before or after the options
    try:
        run_study(args.out, args.ratios, args.modes, args.overrides)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
