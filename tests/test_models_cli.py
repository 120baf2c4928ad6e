"""``python -m models``: what its sub-commands refuse before any work, and how they say it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.__main__ import main as models_main


@pytest.fixture
def catalogue(tmp_path: Path) -> Path:
    path = tmp_path / "catalog.csv"
    path.write_text("id,title,year,genres,image\n")
    return path


FORMATS = {"train": "posterrec-embedder/1", "train-behaviour": "posterrec-behaviour/1"}


def _out_holding(out: Path, kind: str, command: str) -> Path:
    """``out`` made as ``kind`` says; the user's file in it (or ``out`` itself), which must survive."""
    if kind == "file":
        out.write_text("important")
        return out
    out.mkdir()
    other = FORMATS["train" if command == "train-behaviour" else "train-behaviour"]
    if kind == "damaged":
        (out / "manifest.json").write_text('{"format": "posterrec-')
    elif kind != "folder":
        (out / "manifest.json").write_text(json.dumps({"format": FORMATS[command] if kind == "export" else other}))
    (out / "notes.txt").write_text("important")
    return out / "notes.txt"


@pytest.fixture
def good_catalogue(tmp_path: Path) -> Path:
    from PIL import Image

    (tmp_path / "posters").mkdir()
    for name in ("a", "b"):
        Image.new("RGB", (8, 12)).save(tmp_path / "posters" / f"{name}.png")
    path = tmp_path / "posters" / "catalog.csv"
    path.write_text("id,title,year,genres,image\na,A,1999,Drama,a.png\nb,B,2001,Comedy,b.png\n")
    return path


@pytest.mark.parametrize("command", ["train", "train-behaviour"])
@pytest.mark.parametrize(
    ("kind", "said"),
    [
        ("file", "is a file, not a folder"),
        ("folder", "holds no exported model, and the export would replace it all"),
        ("export", "holds an earlier export and also notes.txt, and the export would replace it all"),
        ("other model", "holds a posterrec-{other}/1 model, not a posterrec-{own}/1 one"),
        ("damaged", "holds a manifest.json that cannot be read (a damaged export?), and the export would replace"),
    ],
)
def test_an_out_the_export_would_lose_files_in_is_refused_and_kept(
    tmp_path: Path, catalogue: Path, capsys, command: str, kind: str, said: str
) -> None:
    """The export replaces --out whole: a mistyped --out must not move or delete the user's files."""
    out = tmp_path / "notes"
    kept = _out_holding(out, kind, command)
    inputs = ["--catalog", str(catalogue)] if command == "train" else ["--store", str(tmp_path / "store.sqlite3")]
    with pytest.raises(SystemExit) as stopped:
        models_main([command, *inputs, "--out", str(out)])
    assert stopped.value.code == 2
    own, other = ("embedder", "behaviour") if command == "train" else ("behaviour", "embedder")
    assert f"--out {out} {said.format(own=own, other=other)}" in capsys.readouterr().err
    assert kept.read_text() == "important"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["catalog.csv", "notes"]


@pytest.mark.parametrize("option", ["--out", "--cache-dir"])
def test_a_folder_inside_a_file_is_refused_before_any_work(tmp_path: Path, catalogue: Path, capsys, option) -> None:
    paths = {"--out": str(tmp_path / "model"), "--cache-dir": str(tmp_path / "cache")} | {option: f"{catalogue}/sub"}
    with pytest.raises(SystemExit) as stopped:
        models_main(["train", "--catalog", str(catalogue), *(part for item in paths.items() for part in item)])
    assert stopped.value.code == 2
    assert f"{option} {catalogue}/sub is inside {catalogue}, a file, not a folder" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("command", "option", "value", "said"),
    [
        ("train", "--batch-size", "0", "is below 1"),
        ("train", "--batch-size", "-4", "is below 1"),
        ("train", "--head-epochs", "-1", "is below 0"),
        ("train", "--unfreeze-blocks", "-2", "is below 0"),
        ("train-behaviour", "--epochs", "0", "is below 1"),
        ("train-behaviour", "--embedding-dim", "0", "is below 1"),
        ("train-behaviour", "--id-dropout", "2", "is not in [0, 1)"),
        ("train", "--batch-size", "abc", "is not a whole number"),
        ("train-behaviour", "--id-dropout", "half", "is not a number"),
    ],
)
def test_values_out_of_range_are_usage_errors_naming_the_option(
    tmp_path: Path, catalogue: Path, capsys, command: str, option: str, value: str, said: str
) -> None:
    inputs = ["--catalog", str(catalogue)] if command == "train" else []
    with pytest.raises(SystemExit) as stopped:
        models_main([command, *inputs, "--out", str(tmp_path / "model"), f"{option}={value}"])
    assert stopped.value.code == 2
    shown = value if value.lstrip("-").isdigit() else repr(value)
    assert f"argument {option}: {shown} {said}" in capsys.readouterr().err


def test_a_catalogue_without_a_good_row_is_not_told_to_skip_its_bad_ones(tmp_path: Path, capsys) -> None:
    catalogue = tmp_path / "catalog.csv"
    catalogue.write_text("id,title,year,genres,image\n1,A,1999,,a.jpg\n")
    with pytest.raises(SystemExit) as stopped:
        models_main(["train", "--catalog", str(catalogue), "--out", str(tmp_path / "model")])
    assert stopped.value.code == f"error: {catalogue}: no usable rows"


def test_a_store_that_is_a_folder_is_named_so(tmp_path: Path, capsys) -> None:
    args = ["train-behaviour", "--out", str(tmp_path / "model"), "--store", str(tmp_path)]
    assert models_main(args) == 1
    assert f"store {tmp_path} is a folder, not a store" in capsys.readouterr().err


def test_a_store_that_is_not_a_database_is_one_error_line(tmp_path: Path, catalogue: Path, capsys) -> None:
    import numpy as np

    from indexer.publish import publish_index
    from indexer.published import IndexItem

    vectors = np.eye(4, dtype=np.float32)
    items = [IndexItem(f"t{i}", f"t{i}", f"T{i}", "") for i in range(4)]
    publish_index(tmp_path / "index", items, vectors, {}, exact_search_max_items=10, recall_floor=0.0, keep_versions=1)
    args = ["train-behaviour", "--out", str(tmp_path / "model"), "--index", str(tmp_path / "index")]
    assert models_main([*args, "--store", str(catalogue)]) == 1
    assert capsys.readouterr().err == f"error: store {catalogue} cannot be opened: file is not a database\n"


def test_evaluate_names_a_model_path_that_is_a_file(good_catalogue: Path, capsys) -> None:
    evaluate = ["evaluate", "--model", str(good_catalogue), "--catalog", str(good_catalogue), "--split", "all"]
    assert models_main(evaluate) == 1
    assert f"model directory {good_catalogue} is a file, not a model folder" in capsys.readouterr().err


def test_evaluate_checks_the_size_of_the_split_before_loading_the_model(
    tmp_path: Path, good_catalogue: Path, capsys
) -> None:
    with pytest.raises(SystemExit, match="fewer than 2 posters in the test split; evaluate on every row"):
        models_main(["evaluate", "--model", str(tmp_path / "no model"), "--catalog", str(good_catalogue)])


def test_bad_rows_are_counted_once_each_and_reported_as_an_error(tmp_path: Path, capsys) -> None:
    catalogue = tmp_path / "catalog.csv"
    from PIL import Image

    Image.new("RGB", (8, 12)).save(tmp_path / "c.png")
    catalogue.write_text("id,title,year,genres,image\n1,A,19x9,,a.jpg\n2,B,2000,Drama,b.jpg\n3,C,2001,Drama,c.png\n")
    with pytest.raises(SystemExit) as stopped:
        models_main(["train", "--catalog", str(catalogue), "--out", str(tmp_path / "model")])
    assert stopped.value.code == f"error: {catalogue}: 2 bad row(s); fix them or pass --skip-bad-rows"
    assert capsys.readouterr().err.count("line 2") == 2, "the first row has two problems"


def test_train_reads_images_outside_the_catalogues_folder_only_when_allowed(tmp_path: Path, capsys) -> None:
    from PIL import Image

    (tmp_path / "shared").mkdir()
    Image.new("RGB", (8, 12)).save(tmp_path / "shared" / "a.png")
    (tmp_path / "catalogue").mkdir()
    (tmp_path / "catalogue" / "posters").symlink_to(tmp_path / "shared")
    catalogue = tmp_path / "catalogue" / "catalog.csv"
    catalogue.write_text("id,title,year,genres,image\n1,A,1999,,posters/a.png\n")
    train = ["train", "--catalog", str(catalogue), "--out", str(tmp_path / "model")]
    for extra, outside in (([], True), (["--allow-outside-images"], False)):
        with pytest.raises(SystemExit):
            models_main([*train, *extra])
        reported = capsys.readouterr().err
        assert "empty genres" in reported
        assert ("leads outside the catalogue's folder" in reported) is outside
        assert "(allow it with --allow-outside-images)" in reported or not outside


def test_more_head_only_epochs_than_warm_up_epochs_are_refused(tmp_path: Path, catalogue: Path, capsys) -> None:
    train = ["train", "--catalog", str(catalogue), "--out", str(tmp_path / "model")]
    assert models_main([*train, "--warmup-epochs", "1", "--head-epochs", "3"]) == 1
    assert "3 head-only epochs: they are the first of the 1 warm-up epochs" in capsys.readouterr().err


def test_a_cache_dir_that_is_a_file_is_refused_before_any_work(tmp_path: Path, catalogue: Path, capsys) -> None:
    with pytest.raises(SystemExit) as stopped:
        models_main(["train", "--catalog", str(catalogue), "--out", str(tmp_path / "m"), "--cache-dir", str(catalogue)])
    assert stopped.value.code == 2
    assert f"--cache-dir {catalogue} is a file, not a folder" in capsys.readouterr().err


def test_evaluate_names_a_model_file_keras_cannot_load_and_checks_the_catalogue_first(
    tmp_path: Path, catalogue: Path, good_catalogue: Path, capsys
) -> None:
    model = tmp_path / "model"
    model.mkdir()
    manifest = {"format": "posterrec-embedder/1", "input_size": 32, "embedding_dim": 8, "letterbox": True}
    (model / "manifest.json").write_text(json.dumps(manifest))
    (model / "model.keras").write_text("not a model")
    with pytest.raises(SystemExit, match="no usable rows"):
        models_main(["evaluate", "--model", str(model), "--catalog", str(catalogue)])
    assert models_main(["evaluate", "--model", str(model), "--catalog", str(good_catalogue), "--split", "all"]) == 1
    assert f"error: {model / 'model.keras'} cannot be loaded as a Keras model" in capsys.readouterr().err


def test_weights_that_name_no_file_are_refused_before_the_catalogue_is_read(
    tmp_path: Path, catalogue: Path, monkeypatch, capsys
) -> None:
    train = ["train", "--catalog", str(catalogue), "--out", str(tmp_path / "model")]
    with pytest.raises(SystemExit) as stopped:
        models_main([*train, "--weights", "imagent"])
    assert stopped.value.code == 2
    expected = "weights file imagent does not exist (expected 'imagenet' or 'none' or a file path)"
    assert f"--weights: {expected}" in capsys.readouterr().err
    monkeypatch.setenv("POSTERREC_WEIGHTS", str(tmp_path / "gone.h5"))
    with pytest.raises(SystemExit):
        models_main(train)
    assert f"the weights setting: weights file {tmp_path / 'gone.h5'} does not exist" in capsys.readouterr().err


def test_the_stop_note_of_a_training_run_counts_only_its_own_finished_epochs(tmp_path: Path) -> None:
    import argparse
    import time

    import tensorflow as tf

    from models.__main__ import interrupted_training
    from models.epoch_checkpoints import checkpoint_folder, save_epoch

    out = tmp_path / "model"
    started = time.time()
    fresh = argparse.Namespace(out=out, resume=False, started=started)
    assert interrupted_training(fresh) == "no epoch had finished: run the same command to start again"
    save_epoch(tf.train.Checkpoint(weight=tf.Variable(1.0)), checkpoint_folder(out), 2, {"settings": {}})
    kept = f"2 finished epoch(s) kept in {tmp_path / 'model.train'}: run the same command with --resume to continue"
    assert interrupted_training(fresh) == kept
    later = argparse.Namespace(out=out, resume=False, started=time.time() + 60)  # a new run, stopped before it began
    assert interrupted_training(later) == "no epoch had finished: run the same command to start again"
    assert interrupted_training(argparse.Namespace(out=out, resume=True, started=time.time() + 60)) == kept


@pytest.mark.parametrize("option", ["--out", "--cache-dir"])
@pytest.mark.parametrize(("folder", "refusing"), [("/sys/posterrec/x", "/sys"), ("/proc/posterrec/x", "/proc")])
def test_a_folder_that_cannot_be_written_is_refused_before_training_and_nothing_is_made(
    tmp_path: Path, good_catalogue: Path, capsys, option: str, folder: str, refusing: str
) -> None:
    """Neither /sys nor /proc takes a new file, even from root; the 2-poster catalogue would stop training itself
    later, with another message."""
    folders = {"--out": str(tmp_path / "models" / "a"), "--cache-dir": str(tmp_path / "cache"), option: folder}
    command = ["train", "--catalog", str(good_catalogue), "--backbone", "efficientnet_lite0", "--weights", "none"]
    assert models_main([*command, *(arg for pair in folders.items() for arg in pair)]) == 1
    error = capsys.readouterr().err.strip()
    checked = folder if option == "--cache-dir" else str(Path(folder).parent)
    assert error.startswith(f"error: {checked}: ") and error.endswith(f"(no file can be written in {refusing})")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["posters"], "the check makes no folder"
