"""Per-epoch checkpoints of a training run, so that ``--resume`` continues an interrupted one."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from posterrec_atomic import write_text

if TYPE_CHECKING:  # only named in annotations: the command line reads a run's state without loading TensorFlow
    import tensorflow as tf

log = logging.getLogger(__name__)

STATE_FILE = "state.json"


DATA = "data"
"""The key of a run's settings that holds its training data's digest."""


def checkpoint_folder(out_dir: Path) -> Path:
    """Where a run exporting to ``out_dir`` keeps its per-epoch checkpoints: ``<out_dir>.train``."""
    return out_dir.with_name(out_dir.name + ".train")


def finished_epochs(work_dir: Path, written_since: float = 0.0) -> int:
    """How many epochs the run checkpointed in ``work_dir`` finished: 0 when it holds no readable state, or
    only one written before ``written_since`` (a time as ``time.time`` gives it)."""
    state_file = work_dir / STATE_FILE
    try:
        if state_file.stat().st_mtime < written_since:
            return 0
        return int(json.loads(state_file.read_text())["completed_epochs"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def save_epoch(checkpoint: tf.train.Checkpoint, work_dir: Path, completed: int, state: dict) -> None:
    """Write the weights after epoch ``completed`` and ``state`` beside them, then drop the epoch before.
    ``state["settings"]`` holds what decides the weights (JSON values, the data's digest under :data:`DATA`),
    for :func:`restore_epoch` to compare."""
    work_dir.mkdir(parents=True, exist_ok=True)
    checkpoint.write(str(work_dir / f"epoch-{completed}"))
    write_text(work_dir / STATE_FILE, json.dumps({**state, "completed_epochs": completed}, indent=2))
    for old in work_dir.glob(f"epoch-{completed - 1}.*"):
        old.unlink()


def restore_epoch(checkpoint: tf.train.Checkpoint, work_dir: Path, settings: dict) -> dict | None:
    """The state an interrupted run saved, with its weights read into ``checkpoint``; None when there is none.

    Raises:
        ValueError: the run was trained with other ``settings`` (:func:`save_epoch`); the message names them.
    """
    state_file = work_dir / STATE_FILE
    if not state_file.is_file():
        log.info("no interrupted run in %s; starting from the first epoch", work_dir)
        return None
    state = json.loads(state_file.read_text())
    if not isinstance(state.get("settings"), dict):
        raise ValueError(
            f"cannot resume from {work_dir}: its {STATE_FILE} does not list the settings it was trained with "
            "(an older PosterRec wrote it); rerun without --resume to start over"
        )
    changed = changed_settings(state["settings"], settings)
    if changed:
        raise ValueError(
            f"cannot resume from {work_dir}: it was trained with other settings or data ({'; '.join(changed)}); "
            "rerun with the same ones, or without --resume to start over"
        )
    checkpoint.read(str(work_dir / f"epoch-{int(state['completed_epochs'])}")).assert_existing_objects_matched()
    return state


def changed_settings(saved: dict, settings: dict) -> list[str]:
    """What differs between the ``saved`` settings of a run and ``settings``, one phrase each (none when equal)."""
    now = json.loads(json.dumps(settings))  # as saved: tuples become lists
    names = sorted(name for name in saved.keys() | now.keys() if saved.get(name) != now.get(name))
    return [
        "the training data" if name == DATA else f"{name} was {saved.get(name)!r}, now {now.get(name)!r}"
        for name in names
    ]
