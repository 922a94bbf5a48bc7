"""Files from others cannot run code: every loader refuses crafted checkpoints before anything runs."""

import ast
import os
from pathlib import Path

import pytest
import torch

import stl10_lightning
from tests.helpers import assert_one_line_error, run_main

PACKAGE = Path(stl10_lightning.__file__).parent


class RunsCode:
    """Unpickling this object runs a shell command, as a malicious checkpoint would."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def lightning_like(payload, path: Path) -> Path:
    torch.save(
        {"state_dict": {}, "epoch": 0, "global_step": 0, "pytorch-lightning_version": "2.6.6", **payload},
        path,
    )
    return path


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "code_ran"


@pytest.fixture
def crafted(tmp_path, marker) -> Path:
    """A checkpoint whose pickle runs `touch marker`; shown to be live by loading it unsafely once."""
    path = lightning_like({"hyper_parameters": {"payload": RunsCode(marker)}}, tmp_path / "crafted.ckpt")
    torch.load(path, weights_only=False)
    assert marker.exists()
    marker.unlink()
    return path


@pytest.mark.parametrize(
    ("loader", "message"),
    [
        ("ckpt_path={}", r"cannot read ckpt_path=.*crafted.ckpt \(UnpicklingError\)"),
        ("stage=linear_probe probe.backbone={}", r"cannot read .*crafted.ckpt as a backbone or checkpoint"),
        (
            "stage=pseudo_label ratio=0.2 pseudo.teacher={}",
            r"cannot read .*crafted.ckpt as a checkpoint \(UnpicklingError\)",
        ),
    ],
)
def test_a_pickle_that_runs_code_is_refused_by_every_loader(
    monkeypatch, capfd, synthetic_root, tmp_path, crafted, marker, loader, message
):
    overrides = loader.format(crafted).split()
    code, err = run_main(monkeypatch, capfd, tmp_path, f"data.root={synthetic_root}", *overrides)
    assert code == 2
    assert_one_line_error(err, message)
    assert not marker.exists() and not (tmp_path / "run" / "metrics.json").exists()


def test_a_teacher_config_naming_another_callable_is_not_built(
    monkeypatch, capfd, synthetic_root, tmp_path, marker
):
    """Plain data passes weights_only; a `_target_` in it must still not choose what runs."""
    evil = {"_target_": "builtins.open", "file": str(marker), "mode": "w"}  # not on Hydra's blocklist
    teacher = lightning_like(
        {"hyper_parameters": {"backbone": evil}, "state_dict": {"head.weight": torch.zeros(10, 8)}},
        tmp_path / "teacher.ckpt",
    )
    overrides = [
        f"data.root={synthetic_root}",
        "stage=pseudo_label",
        "ratio=0.2",
        f"pseudo.teacher={teacher}",
    ]
    code, err = run_main(monkeypatch, capfd, tmp_path, *overrides)
    assert code == 2
    assert_one_line_error(
        err, r"teacher.ckpt asks to build \['builtins.open'\], not a backbone of this project"
    )
    assert not marker.exists()


def calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node, ast.unparse(node.func), {k.arg: ast.unparse(k.value) for k in node.keywords}


def test_the_package_never_unpickles_or_evaluates_untrusted_input():
    """eval/exec, pickle, unsafe YAML; every torch.load and checkpoint load with weights_only=True."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node, name, keywords in calls(ast.parse(path.read_text())):
            where = f"{path.relative_to(PACKAGE)}:{node.lineno} {name}"
            if name in ("eval", "exec", "compile", "__import__") or name.split(".")[0] in (
                "pickle",
                "dill",
                "marshal",
            ):
                found.append(where)
            if name in ("yaml.load", "yaml.unsafe_load") or keywords.get("allow_pickle") == "True":
                found.append(where)
            checkpoint_load = (
                name == "torch.load" or name.endswith("load_from_checkpoint") or "ckpt_path" in keywords
            )
            if checkpoint_load and keywords.get("weights_only") != "True":
                found.append(f"{where} without weights_only=True")
    assert found == []
