"""Per-epoch checkpoints of a training run, so that ``--resume`` continues an interrupted one."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import tensorflow as tf

from posterrec_atomic import write_text

log = logging.getLogger(__name__)

STATE_FILE = "state.json"


def save_epoch(checkpoint: tf.train.Checkpoint, work_dir: Path, completed: int, state: dict) -> None:
    """Write the weights after epoch ``completed`` and ``state`` beside them, then drop the epoch before."""
    work_dir.mkdir(parents=True, exist_ok=True)
    checkpoint.write(str(work_dir / f"epoch-{completed}"))
    write_text(work_dir / STATE_FILE, json.dumps({**state, "completed_epochs": completed}, indent=2))
    for old in work_dir.glob(f"epoch-{completed - 1}.*"):
        old.unlink()


def restore_epoch(checkpoint: tf.train.Checkpoint, work_dir: Path, config_fingerprint: str) -> dict | None:
    """The state an interrupted run saved, with its weights read into ``checkpoint``; None when there is none.

    Raises:
        ValueError: the run was trained with another configuration or data.
    """
    state_file = work_dir / STATE_FILE
    if not state_file.is_file():
        log.info("no interrupted run in %s; starting from the first epoch", work_dir)
        return None
    state = json.loads(state_file.read_text())
    if state["config"] != config_fingerprint:
        raise ValueError(
            f"cannot resume from {work_dir}: it was trained with other settings or data; "
            "rerun without --resume to start over"
        )
    checkpoint.read(str(work_dir / f"epoch-{int(state['completed_epochs'])}")).assert_existing_objects_matched()
    return state
