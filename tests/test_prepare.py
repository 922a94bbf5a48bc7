"""stl10-prepare: image folders and torchvision datasets into the layout every stage reads, and every
refusal in one line."""

import json
import os
import pickle
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stl10_lightning.common.errors import UserError
from stl10_lightning.data import prepare
from stl10_lightning.data.image_files import decode, decoding_pool, image_files
from stl10_lightning.data.stl10_binary import STL10Binary, to_upright
from tests.helpers import assert_one_line_error
from tests.image_tree import CLASSES, write_image_tree


def test_the_tree_becomes_the_layout_with_its_classes_statistics_and_skipped_file(prepared_root):
    manifest = json.loads((prepared_root / "stl10_binary" / "manifest.json").read_text())
    assert manifest["counts"] == {"train": 36, "test": 12, "unlabeled": 24}  # the corrupt file left out
    assert manifest["class_names"] == list(CLASSES) and manifest["image_size"] == 40
    assert manifest["format"] == 1 and manifest["tool"].startswith("stl10-lightning ")
    assert manifest["skipped"] == 1 and manifest["test_split"].startswith("the images of ")
    skipped = (prepared_root / "skipped.txt").read_text().splitlines()
    assert skipped[0].split("\t")[0].endswith("train/circle/broken.jpg") and skipped[-1] == "1 skipped"
    binary = STL10Binary(prepared_root)
    assert np.bincount(binary.labels("train")).tolist() == [12, 12, 12]
    assert binary.class_names() == list(CLASSES)
    train = to_upright(binary.images("train")[:]) / 255
    assert train.shape == (36, 3, 40, 40)
    assert manifest["mean"] == pytest.approx(train.mean(axis=(0, 2, 3)).tolist(), abs=1e-4)
    assert manifest["std"] == pytest.approx(train.std(axis=(0, 2, 3)).tolist(), abs=1e-4)
    assert not list(prepared_root.parent.glob("*.partial-*"))


def test_images_come_out_upright_square_and_rgb(tmp_path):
    wide = np.zeros((30, 60, 3), dtype=np.uint8)
    wide[:, :30] = (255, 0, 0)  # left half red
    wide[:, 30:] = (0, 0, 255)  # right half blue
    wide[:5] = (0, 255, 0)  # green band along the top
    Image.fromarray(wide).save(tmp_path / "wide.png")
    image = decode(tmp_path / "wide.png", 20)
    assert image.shape == (3, 20, 20)  # the centre 30x30, resized
    assert image[:, 10, 2].tolist() == [255, 0, 0] and image[:, 10, 17].tolist() == [0, 0, 255]
    assert image[1, 0].min() > 200 and image[1, 19].max() < 50

    transparent = np.zeros((8, 8, 4), dtype=np.uint8)
    transparent[:, :4] = (10, 20, 30, 255)  # the right half is transparent black
    Image.fromarray(transparent, mode="RGBA").save(tmp_path / "alpha.png")
    assert decode(tmp_path / "alpha.png", 8)[:, 0, 7].tolist() == [255, 255, 255]  # laid on white

    Image.fromarray(np.full((8, 8), 40000, dtype=np.uint16)).save(tmp_path / "sixteen.png")
    assert decode(tmp_path / "sixteen.png", 8)[:, 0, 0].tolist() == [156, 156, 156]  # 40000 / 257, not 255

    tall = np.zeros((4, 8, 3), dtype=np.uint8)
    tall[:, :4] = 255  # white on the left before the EXIF rotation by 90 degrees clockwise
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(tall).save(tmp_path / "rotated.jpg", exif=exif, quality=100)
    assert decode(tmp_path / "rotated.jpg", 4)[0, 0].mean() > 200  # now white on top, as displayed


def test_without_a_test_folder_a_stratified_seeded_share_is_carved_out(image_tree, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(image_tree / "train", src / "train")
    out = tmp_path / "out"
    manifest = prepare.prepare(out, src, size=16, test_fraction=0.25, seed=3)
    assert manifest["counts"]["train"] + manifest["counts"]["test"] == 36
    assert manifest["test_split"].startswith("a stratified 25% of ") and "(seed 3)" in manifest["test_split"]
    assert np.bincount(STL10Binary(out).labels("test")).min() >= 2  # every class in the test set
    assert manifest["counts"]["unlabeled"] == 0 and (out / "stl10_binary" / "unlabeled_X.bin").is_file()


def small_tree(root):
    return write_image_tree(root / "src", train_per_class=2, test_per_class=1, unlabeled=2)


def _empty_class(src):
    (src / "train" / "kite").mkdir()


def _test_class_not_in_train(src):
    shutil.copytree(src / "test" / "square", src / "test" / "kite")


def _empty_test_folder(src):
    for name in CLASSES:
        shutil.rmtree(src / "test" / name)


def _unreadable_test_images(src):
    for path in (src / "test").rglob("*.*"):
        path.write_bytes(b"not an image")


def _class_name_with_newline(src):
    (src / "train" / "square").rename(src / "train" / "squ\nare")


def _class_name_not_utf8(src):
    os.rename(src / "train" / "square", os.fsencode(src / "train") + b"/caf\xe9")


def _test_a_broken_link(src):
    shutil.rmtree(src / "test")
    (src / "test").symlink_to(src / "moved_test")


def _linked_to_another(link, target):
    shutil.rmtree(link, ignore_errors=True)
    link.symlink_to(target)


LINKS = {  # each makes one file two labels, or a test image a train or unlabeled one
    "class folder linked to another class": ("train/square", "train/circle"),
    "class folder linked to its test folder": ("train/square", "test/square"),
    "folder linked sideways": ("train/square/more", "train/circle"),
    "file linked to a test image": ("train/square/more.jpg", "test/square/000.jpg"),
}


def _one_image_in_a_class(src):
    shutil.rmtree(src / "test")
    next((src / "train" / "square").iterdir()).unlink()


def _one_class(src):
    for name in CLASSES[1:]:
        shutil.rmtree(src / "train" / name)
    shutil.rmtree(src / "test")


REFUSALS = {
    "out exists": ([], lambda src: (src.parent / "out").mkdir(), r"out already exists"),
    "no train folder": ([], lambda src: shutil.rmtree(src / "train"), r"src/train is missing"),
    "empty class folder": ([], _empty_class, r"train/kite is an empty class folder"),
    "test class not in train": ([], _test_class_not_in_train, r"test/kite is a class that .* does not have"),
    "one class": ([], _one_class, r"has 1 class folder\(s\); a classifier needs at least 2"),
    "strict": (["--strict"], lambda src: None, r"broken.jpg cannot be read \(.*\); without --strict"),
    "size too small": (["--size", "4"], lambda src: None, r"--size 4: give an image side from 8 to 1024"),
    "size not a number": (["--size", "big"], lambda src: None, r"argument --size: invalid int value"),
    "unknown dataset": (["--from", "mnist"], lambda src: None, r"argument --from: invalid choice: 'mnist'"),
    "empty test folder": ([], _empty_test_folder, r"src/test has no class folders; put its images in test/"),
    "unreadable test": (
        [],
        _unreadable_test_images,
        r"none of the 3 test images could be read \(.*\); replace",
    ),
    "newline in class": ([], _class_name_with_newline, r"'.*squ\\nare': a class name becomes a line of"),
    "class not utf-8": ([], _class_name_not_utf8, r"caf\\udce9': a class name .* printable UTF-8"),
    "class left without train": (
        ["--test-fraction", "0.6"],
        _one_image_in_a_class,
        r"--test-fraction 0.6 takes all 1 image\(s\) of class 'square', which then has no train image",
    ),  # fmt: skip
    "test a broken link": ([], _test_a_broken_link, r"src/test is a file or a broken link, not a folder"),
    "negative seed": (["--seed", "-1"], lambda src: None, r"--seed -1: give 0 or more"),
    "too many workers": (["--workers", "1000000"], lambda src: None, r"--workers 1000000: give 0 .* to \d+"),
}


REFUSALS.update(
    {
        name: (
            [],
            lambda src, link=link, target=target: _linked_to_another(src / link, src / target),
            message,
        )
        for name, (link, target) in LINKS.items()
        for message in [
            r"is the file .* \(through a link\), in .* and in .*; a file has one class and one split"
        ]
    }
)


@pytest.mark.parametrize("case", REFUSALS, ids=list(REFUSALS))
def test_each_refusal_is_one_line_and_leaves_no_output(tmp_path, capsys, case):
    options, spoil, message = REFUSALS[case]
    src = small_tree(tmp_path)
    spoil(src)
    existed = (tmp_path / "out").exists()
    with pytest.raises(SystemExit) as stopped:
        prepare.main([str(src), str(tmp_path / "out"), "--workers", "0", *options])
    assert stopped.value.code == 2
    assert_one_line_error(capsys.readouterr().err, message)
    assert (tmp_path / "out").exists() == existed and not list(tmp_path.glob("out.partial-*"))


OUT_REFUSALS = {
    "inside SRC": (lambda tmp: tmp / "src" / "train" / "zz", r"OUT .*src/train/zz is inside SRC"),
    "under a file": (
        lambda tmp: tmp / "src" / "train" / "circle" / "000.jpg" / "out",
        r"is a file, not a folder",
    ),
    "name too long": (
        lambda tmp: tmp / ("x" * 250),
        r"the name x+\.\.\. is too long; keep names to \d+ bytes",
    ),
    "a dangling link": (lambda tmp: _dangling_link(tmp / "link"), r"link already exists"),
    "inside a run": (
        lambda tmp: _run_folder(tmp / "run") / "data",
        r"is inside the run folder .*run, and a later",
    ),
    "through a link into a run": (
        lambda tmp: _link_into_a_run(tmp) / "data",
        r"is inside the run folder .*run,",
    ),
    "inside a run with a large config": (
        lambda tmp: _run_folder(tmp / "run", padding=2_000_000) / "data",
        r"is inside the run folder .*run, and a later",
    ),
}


def _link_into_a_run(tmp):
    (_run_folder(tmp / "run") / "checkpoints").mkdir()
    (tmp / "link").symlink_to(tmp / "run" / "checkpoints")
    return tmp / "link"


def test_a_path_that_only_passes_through_a_run_folder_is_not_inside_it(tmp_path):
    src = small_tree(tmp_path)
    _run_folder(tmp_path / "run")
    (tmp_path / "run" / "config.yaml").write_text("stage:\n  name: supervised\ntrainer:\n  max_epochs: 1\n")
    prepare.prepare(tmp_path / "run" / ".." / "prepared", src, size=8)
    assert (tmp_path / "prepared" / "skipped.txt").is_file()
    assert sorted(path.name for path in (tmp_path / "run").iterdir()) == ["config.yaml", "metrics.json"]


def _dangling_link(path):
    path.symlink_to(path.parent / "nowhere")
    return path


def _run_folder(folder, padding=0):
    folder.mkdir()
    # Quoted keys: the same YAML as train.py writes, spelled another way; padding makes it large.
    config = f"notes: {'x' * padding}\n" + '"stage": {name: supervised}\n"trainer": {max_epochs: 1}\n'
    (folder / "config.yaml").write_text(config)
    (folder / "metrics.json").write_text("{}")
    return folder


@pytest.mark.parametrize("case", OUT_REFUSALS, ids=list(OUT_REFUSALS))
def test_an_out_that_cannot_or_must_not_be_written_is_refused_before_converting(tmp_path, capsys, case):
    src = small_tree(tmp_path)
    where, message = OUT_REFUSALS[case]
    out = where(tmp_path)
    before = sorted(str(path) for path in tmp_path.rglob("*"))
    with pytest.raises(SystemExit) as stopped:
        prepare.main([str(src), str(out), "--workers", "0"])
    assert stopped.value.code == 2
    assert_one_line_error(capsys.readouterr().err, message)
    assert sorted(str(path) for path in tmp_path.rglob("*")) == before


def test_an_interrupted_conversion_leaves_nothing(tmp_path, capsys, monkeypatch):
    src = small_tree(tmp_path)
    write = prepare.write_split

    def interrupted_at_test(folder, name, *args, **kwargs):
        if name == "test":
            raise KeyboardInterrupt
        return write(folder, name, *args, **kwargs)

    monkeypatch.setattr(prepare, "write_split", interrupted_at_test)
    with pytest.raises(SystemExit) as stopped:
        prepare.main([str(src), str(tmp_path / "out"), "--workers", "0"])
    assert stopped.value.code == 130 and "was not written" in capsys.readouterr().err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["src"]


def write_cifar10(root, per_batch: int = 6, test: int = 8) -> np.ndarray:
    """cifar-10-batches-py as the official download lays it out: pickled dicts of rows of 3x32x32
    (channel planes, each row-major). Returns every train image, (N, 3, 32, 32), in file order."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    batches = {f"data_batch_{i}": per_batch for i in range(1, 6)} | {"test_batch": test}
    train, written = [], 0
    for name, count in batches.items():
        data = rng.integers(0, 256, size=(count, 3 * 32 * 32), dtype=np.uint8)
        labels = [(written + number) % 10 for number in range(count)]  # every class, 3 times in train
        written += count
        with (folder / name).open("wb") as f:
            pickle.dump({"data": data, "labels": labels}, f)
        if name != "test_batch":
            train.append(data.reshape(-1, 3, 32, 32))
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    with (folder / "batches.meta").open("wb") as f:
        pickle.dump({"label_names": names}, f)
    return np.concatenate(train)


def test_from_cifar10_keeps_its_pixels_side_classes_and_test_set(tmp_path, capsys, monkeypatch):
    expected = write_cifar10(tmp_path / "cifar")
    # torchvision checks each file's md5 against the real download's, which files written here cannot
    # match: the check only sees that the files are there.
    monkeypatch.setattr(
        "torchvision.datasets.cifar.check_integrity", lambda path, md5=None: os.path.isfile(path)
    )
    out = tmp_path / "out"
    prepare.main([str(out), "--from", "cifar10", "--root", str(tmp_path / "cifar"), "--workers", "0"])
    assert "prepared" in capsys.readouterr().out
    manifest = json.loads((out / "stl10_binary" / "manifest.json").read_text())
    assert manifest["counts"] == {"train": 30, "test": 8, "unlabeled": 0} and manifest["image_size"] == 32
    assert manifest["class_names"][:2] == ["airplane", "automobile"] and len(manifest["class_names"]) == 10
    assert manifest["test_split"] == "cifar10's own test set"
    binary = STL10Binary(out)
    assert np.array_equal(to_upright(binary.images("train")[:]), expected)

    shares = tmp_path / "shares"
    prepare.main(
        [str(shares), "--from", "cifar10", "--root", str(tmp_path / "cifar"), "--unlabeled-fraction", "0.5"]
    )
    counts = json.loads((shares / "stl10_binary" / "manifest.json").read_text())["counts"]
    assert counts == {"train": 15, "test": 8, "unlabeled": 15}


def test_without_the_md5_check_bypassed_a_foreign_cifar_folder_is_refused(tmp_path, capsys):
    write_cifar10(tmp_path / "cifar")
    with pytest.raises(SystemExit) as stopped:
        prepare.main([str(tmp_path / "out"), "--from", "cifar10", "--root", str(tmp_path / "cifar")])
    assert stopped.value.code == 2
    assert_one_line_error(
        capsys.readouterr().err, r"--from cifar10: torchvision cannot read it .*not found or"
    )


def test_what_is_not_read_is_listed_and_linked_folders_are_read(tmp_path):
    src = small_tree(tmp_path)
    circle = src / "train" / "circle"
    elsewhere = tmp_path / "more_circles"
    shutil.copytree(circle, elsewhere, ignore=shutil.ignore_patterns("broken*"))
    (circle / "linked").symlink_to(elsewhere)  # read: the tree as the user sees it
    (elsewhere / "loop").symlink_to(circle)  # a link back up the tree: read once, not forever
    (circle / "up").symlink_to(src / "train")  # would read the other classes' images as circles
    (circle / "again.jpg").symlink_to(circle / "000.jpg")  # one file, one class: read once
    (circle / "bad\nname.jpg").write_bytes(b"not an image")  # a name that would pass for two lines
    (circle / "gone.jpg").symlink_to(tmp_path / "deleted.jpg")
    os.mkfifo(src / "unlabeled" / "pipe")
    (src / "test" / "loose.jpg").write_bytes((src / "test" / "square" / "000.jpg").read_bytes())
    (circle / os.fsdecode(b"caf\xe9.jpg")).write_bytes(b"not an image")  # a name that is not UTF-8
    manifest = prepare.prepare(tmp_path / "out", src, size=16)
    assert manifest["counts"]["train"] == 6 + 2  # the two readable circles again, through the link
    listed = (tmp_path / "out" / "skipped.txt").read_bytes().decode("utf-8", "surrogateescape").splitlines()
    why = dict(line.split("\t") for line in listed[:-1])
    unreadable = [str(circle / "broken.jpg"), str(circle / os.fsdecode(b"caf\xe9.jpg"))]
    unreadable.append(repr(str(circle / "bad\nname.jpg")))  # one line, in quotes
    assert why == {
        **{name: why[name] for name in unreadable},  # PIL's reason
        str(circle / "gone.jpg"): "a broken link",
        str(circle / "linked" / "loop"): "a link to a folder above or already read, not followed",
        str(circle / "up"): "a link to a folder above or already read, not followed",
        str(circle / "again.jpg"): f"the same file as {circle / '000.jpg'}, read once",
        str(src / "unlabeled" / "pipe"): "not a regular file",
        str(src / "test" / "loose.jpg"): "not in a class folder",
    }
    assert listed[-1] == "9 skipped" and manifest["skipped"] == 9


def test_pixels_without_a_fixed_range_are_refused_and_transparency_keys_are_laid_on_white(tmp_path):
    grey = Image.fromarray(np.zeros((8, 8), dtype=np.uint8))
    grey.save(tmp_path / "grey_key.png", transparency=0)
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(
        tmp_path / "rgb_key.png", transparency=(0, 0, 0)
    )
    Image.fromarray(np.full((8, 8), 1000, dtype=np.uint16)).save(
        tmp_path / "sixteen_key.png", transparency=1000
    )
    for name in ("grey_key.png", "rgb_key.png", "sixteen_key.png"):
        assert decode(tmp_path / name, 8)[:, 0, 0].tolist() == [255, 255, 255]
    Image.fromarray(np.full((8, 8), 0.5, dtype=np.float32)).save(tmp_path / "float.tif")
    Image.fromarray(np.full((8, 8), 200, dtype=np.int32)).save(tmp_path / "int32.tif")
    for name, kind in (("float.tif", "floating-point"), ("int32.tif", "integer")):
        with pytest.raises(ValueError, match=f"{kind} pixels of 32 bits have no fixed range"):
            decode(tmp_path / name, 8)


def test_decoding_workers_leave_ctrl_c_to_the_command():
    with decoding_pool(1) as pool:
        assert pool.apply(signal.getsignal, (signal.SIGINT,)) == signal.SIG_IGN


def test_config_files_above_out_that_are_pipes_or_deeply_nested_do_not_stop_a_conversion(tmp_path):
    src = small_tree(tmp_path)
    (tmp_path / "a" / "b").mkdir(parents=True)
    os.mkfifo(tmp_path / "a" / "config.yaml")  # reading it would wait for a writer forever
    (tmp_path / "a" / "b" / "config.yaml").write_text("[" * 5000)  # a YAML parser would recurse too deep
    prepare.prepare(tmp_path / "a" / "b" / "out", src, size=8)
    assert (tmp_path / "a" / "b" / "out" / "skipped.txt").is_file()


def test_a_folder_that_cannot_be_opened_is_listed(tmp_path, monkeypatch):
    src = small_tree(tmp_path)
    (src / "train" / "circle" / "locked").mkdir()
    scandir = os.scandir

    def refused(path="."):
        if os.fspath(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return scandir(path)

    is_file = Path.is_file

    def guarded(path):  # a name listed in a folder that cannot be entered
        if path.name == "000.jpg":
            raise PermissionError(13, "Permission denied", str(path))
        return is_file(path)

    monkeypatch.setattr(os, "scandir", refused)
    monkeypatch.setattr(Path, "is_file", guarded)
    dropped = []
    files = image_files(src / "train" / "circle", dropped)
    assert len(files) == 2
    assert dropped == [
        (src / "train" / "circle" / "000.jpg", "cannot be read (Permission denied)"),
        (src / "train" / "circle" / "locked", "cannot be read (Permission denied)"),
    ]


def test_folders_nested_too_deeply_are_refused_in_one_line(tmp_path, monkeypatch):
    def too_deep(*args, **kwargs):
        raise RecursionError("maximum recursion depth exceeded")
        yield

    monkeypatch.setattr(os, "walk", too_deep)
    with pytest.raises(UserError, match=r"nests folders too deeply to read; flatten it"):
        image_files(tmp_path)


def test_a_test_image_is_never_an_unlabeled_one_and_an_unlabeled_file_is_read_once(tmp_path):
    src = small_tree(tmp_path)
    shutil.rmtree(src / "test")
    shutil.rmtree(src / "unlabeled")
    (src / "unlabeled").symlink_to(src / "train")  # every labeled image also an unlabeled one
    os.link(src / "train" / "square" / "000.jpg", src / "train" / "extra.jpg")
    prepare.prepare(tmp_path / "out", src, size=8, test_fraction=0.4, seed=1)
    listed = (tmp_path / "out" / "skipped.txt").read_text().splitlines()
    assert len([line for line in listed if "left out of unlabeled" in line]) == 3  # round(0.4 * 7) test files
    assert len([line for line in listed if "read once" in line]) == 1  # extra.jpg and square/000.jpg
    binary = STL10Binary(tmp_path / "out")
    test, unlabeled = (
        to_upright(binary.images(split)[:]).reshape(-1, 3 * 64) for split in ("test", "unlabeled")
    )
    assert len(unlabeled) and not {row.tobytes() for row in test} & {row.tobytes() for row in unlabeled}

    shutil.rmtree(tmp_path / "out")
    (src / "unlabeled").unlink()
    (src / "unlabeled").mkdir()
    for name in ("w1.jpg", "w2.jpg"):  # two links to one train image: one unlabeled image
        os.link(src / "train" / "square" / "000.jpg", src / "unlabeled" / name)
    manifest = prepare.prepare(tmp_path / "out", src, size=8, test_fraction=0.4, seed=1)
    listed = (tmp_path / "out" / "skipped.txt").read_text()
    assert manifest["counts"]["unlabeled"] <= 1 and listed.count("w2.jpg") == 1
