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


@pytest.mark.parametrize("command", ["train", "train-behaviour"])
@pytest.mark.parametrize("kind", ["file", "folder"])
def test_an_out_that_is_not_a_model_export_is_refused_and_kept(
    tmp_path: Path, catalogue: Path, capsys, command: str, kind: str
) -> None:
    """The export replaces --out whole: a mistyped --out must not move or delete the user's files."""
    out = tmp_path / "notes"
    if kind == "file":
        out.write_text("important")
    else:
        out.mkdir()
        (out / "notes.txt").write_text("important")
    inputs = ["--catalog", str(catalogue)] if command == "train" else ["--store", str(tmp_path / "store.sqlite3")]
    with pytest.raises(SystemExit) as stopped:
        models_main([command, *inputs, "--out", str(out)])
    assert stopped.value.code == 2
    what = "a file" if kind == "file" else "a folder that holds no exported model"
    assert f"--out {out} is {what}, and the export would replace it" in capsys.readouterr().err
    assert (out.read_text() if kind == "file" else (out / "notes.txt").read_text()) == "important"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["catalog.csv", "notes"]


@pytest.mark.parametrize(
    ("command", "option"),
    [("train", "--batch-size"), ("train-behaviour", "--epochs"), ("train-behaviour", "--embedding-dim")],
)
@pytest.mark.parametrize("value", ["0", "-4"])
def test_sizes_below_one_are_usage_errors(tmp_path: Path, catalogue: Path, capsys, command, option, value) -> None:
    inputs = ["--catalog", str(catalogue)] if command == "train" else []
    with pytest.raises(SystemExit) as stopped:
        models_main([command, *inputs, "--out", str(tmp_path / "model"), f"{option}={value}"])
    assert stopped.value.code == 2
    assert f"argument {option}: {value} is not a positive whole number" in capsys.readouterr().err


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


def test_evaluate_names_a_model_path_that_is_a_file(tmp_path: Path, catalogue: Path, capsys) -> None:
    assert models_main(["evaluate", "--model", str(catalogue), "--catalog", str(catalogue)]) == 1
    assert f"model directory {catalogue} is a file, not a model folder" in capsys.readouterr().err


def test_bad_rows_are_counted_once_each_and_reported_as_an_error(tmp_path: Path, capsys) -> None:
    catalogue = tmp_path / "catalog.csv"
    catalogue.write_text("id,title,year,genres,image\n1,A,19x9,,a.jpg\n2,B,2000,Drama,b.jpg\n")
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


def test_evaluate_names_a_model_file_keras_cannot_load(tmp_path: Path, catalogue: Path, capsys) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "manifest.json").write_text(json.dumps({"format": "posterrec-embedder/1"}))
    (model / "model.keras").write_text("not a model")
    assert models_main(["evaluate", "--model", str(model), "--catalog", str(catalogue)]) == 1
    assert f"error: {model / 'model.keras'} cannot be loaded as a Keras model" in capsys.readouterr().err
