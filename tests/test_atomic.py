"""Write-then-rename: complete files or none, and cleaning up after writers that died."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import posterrec_atomic as atomic


def test_a_write_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "report.txt"
    atomic.write_text(target, "old")
    atomic.write_text(target, "new ✓")
    assert target.read_text(encoding="utf-8") == "new ✓"
    assert [p.name for p in target.parent.iterdir()] == ["report.txt"]
    assert target.stat().st_mode & 0o777 == 0o644


def test_a_write_that_fails_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "model.bin"
    atomic.write_bytes(target, b"good")
    with pytest.raises(RuntimeError), atomic.replacing(target) as temporary:
        temporary.write_bytes(b"half")
        raise RuntimeError("crash mid-write")
    assert target.read_bytes() == b"good"
    assert [p.name for p in tmp_path.iterdir()] == ["model.bin"]


def test_the_temporary_keeps_the_suffix_libraries_pick_a_format_from(tmp_path: Path) -> None:
    temporary = atomic.temporary_path(tmp_path / "poster.png")
    assert temporary.parent == tmp_path and temporary.name.startswith(".poster.png.") and temporary.suffix == ".png"


def test_csv_rows_are_written_whole(tmp_path: Path) -> None:
    target = atomic.write_csv(tmp_path / "skipped.csv", ["id", "reason"], [["t1", "no title, found"]])
    assert target.read_text(encoding="utf-8").splitlines() == ["id,reason", 't1,"no title, found"']


def test_a_directory_is_replaced_whole_and_a_failed_staging_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "model"
    for content in ("v1", "v2"):
        with atomic.staging_directory(tmp_path, prefix=".model.") as staging:
            (staging / "weights").write_text(content)
            atomic.replace_directory(staging, target)
    assert (target / "weights").read_text() == "v2"
    with pytest.raises(ValueError), atomic.staging_directory(tmp_path, prefix=".model.") as staging:
        (staging / "weights").write_text("v3")
        raise ValueError("bad export")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert (target / "weights").read_text() == "v2"


def test_only_temporaries_of_dead_writers_are_removed(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    dead_pid = int(dead.stdout)
    stale = [tmp_path / f".a.png.{dead_pid}.tmp.png", tmp_path / "DE" / f".b.csv.{dead_pid}.tmp"]
    live = tmp_path / f".c.png.{os.getppid()}.tmp.png"
    other = tmp_path / ".notes.tmp"
    for path in (*stale, live, other):
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"x")
    assert sorted(atomic.remove_stale_temporaries(tmp_path)) == sorted(stale)
    assert live.exists() and other.exists() and not any(path.exists() for path in stale)


def test_an_image_is_saved_in_the_format_its_suffix_names(tmp_path: Path) -> None:
    from PIL import Image

    target = atomic.save_image(Image.new("RGB", (4, 6), "red"), tmp_path / "DE" / "t1.png")
    with Image.open(target) as saved:
        assert (saved.format, saved.size) == ("PNG", (4, 6))
    assert [p.name for p in target.parent.iterdir()] == ["t1.png"]
