"""Running a PosterRec pipeline on a Beam runner: the local one by name, any other through Beam's options."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.runners.runner import create_runner

from .beam_stages import METRICS_NAMESPACE
from .published import IndexVersionError

LOCAL_RUNNER = "FnApiRunner"
"""Beam's portable runner in this process: no cluster and no download (the DirectRunner fetches Prism first)."""


def runner_problem(runner: str) -> str | None:
    """Why Beam has no runner named ``runner`` (its own message, which lists the names it knows), or None."""
    if runner == LOCAL_RUNNER:
        return None
    try:
        create_runner(runner)
    except (ValueError, ImportError, AttributeError) as err:  # AttributeError: a module path without that class
        return str(err)
    return None


def make_pipeline(runner: str, beam_args: Sequence[str]) -> beam.Pipeline:
    """A pipeline on ``runner`` (:data:`LOCAL_RUNNER` or a Beam runner name) with standard Beam options ``beam_args``
    (``--direct_num_workers=2 --direct_running_mode=multi_processing``, ``--flink_master=...``, ``--project=...``)."""
    options = PipelineOptions(list(beam_args))
    return beam.Pipeline(runner=FnApiRunner() if runner == LOCAL_RUNNER else runner, options=options)


def run_pipeline(pipeline: beam.Pipeline, consequence: str) -> dict[str, int]:
    """Run to completion and return PosterRec's counters by name; a failure of any stage raises
    ``IndexVersionError`` saying what failed and ``consequence`` (what that leaves as it was)."""
    try:
        result = pipeline.run()
        result.wait_until_finish()
    except Exception as err:  # any stage on any runner: the message says which and why
        raise IndexVersionError(f"{consequence}: {type(err).__name__}: {err}") from err
    counters = result.metrics().query(MetricsFilter())["counters"]
    return {
        c.key.metric.name: int(c.committed if c.committed is not None else c.attempted)
        for c in counters
        if c.key.metric.namespace == METRICS_NAMESPACE
    }


def new_work_folder(work_root: str) -> str:
    """A fresh folder under ``work_root`` for one run's hand-back files, made before the pipeline runs.

    Raises:
        IndexVersionError: it cannot be made (``work_root`` is a file, or not writable).
    """
    folder = FileSystems.join(work_root, uuid.uuid4().hex)
    try:
        FileSystems.mkdirs(folder)
    except OSError as err:
        raise IndexVersionError(f"work folder {work_root} cannot be made: {err}") from None
    return folder


def delete_work_folder(folder: str) -> None:
    """Delete a run's hand-back files and their folder (nothing when it was never written)."""
    files = [m.path for m in FileSystems.match([FileSystems.join(folder, "*")])[0].metadata_list]
    if files:
        FileSystems.delete(files)
    if FileSystems.exists(folder):
        FileSystems.delete([folder])
