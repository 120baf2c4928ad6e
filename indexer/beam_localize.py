"""The localize stage of the Beam rebuild: every pending (title, region) of a localized-titles CSV.

The driver plans (it reads the CSV and the store, and leaves out the variants
that are up to date, as ``localize run`` does); workers clean each poster once
and render each of its regions, writing ``<out>/<REGION>/<id>.png`` by rename,
so a retried bundle rewrites the same file. Made variants come back to the
driver, which registers them in the store, the store having one writer.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from localize.batch import (
    BatchSummary,
    OutputDirError,
    PosterSkipped,
    Request,
    Skip,
    TitlesFileError,
    clean_poster_file,
    noting_earlier_variants,
    pending_requests,
    prepare_out_dir,
    read_requests,
    regions_without_rows,
    render_variant,
    variant_path,
    wanted_regions,
    write_skip_list,
)
from localize.inpaint import DEFAULT_METHOD, METHODS
from posterrec_atomic import save_image

from .beam_runner import LOCAL_RUNNER, delete_work_folder, make_pipeline, new_work_folder, run_pipeline
from .beam_stages import Poster, counter, read_records, write_records
from .published import IndexItem, IndexVersionError
from .store import open_store

SKIPPED = "skipped"


@dataclasses.dataclass(frozen=True)
class LocalizeOptions:
    """The localize stage's inputs, as ``localize run`` takes them."""

    titles_csv: Path
    out_dir: Path
    regions: Sequence[str] | None = None
    method: str = DEFAULT_METHOD


@dataclasses.dataclass(frozen=True)
class LocalizeJob:
    """One poster to clean (its title found by the catalogue's title text) and the regions to render onto it."""

    parent_id: str
    image_path: str
    image_sha256: str
    catalogue_title: str
    requests: tuple[Request, ...]


@dataclasses.dataclass(frozen=True)
class MadeVariant:
    """A variant written by a worker, for the driver to register."""

    parent_id: str
    region: str
    language: str
    title: str
    image_path: str
    image_sha256: str
    source_sha256: str

    def poster(self) -> Poster:
        return Poster(IndexItem.variant_key(self.parent_id, self.region), self.image_path, self.image_sha256)


@dataclasses.dataclass(frozen=True)
class LocalizePlan:
    """What the localize stage will do: ``jobs`` for the workers, ``skipped`` rows known up front."""

    jobs: list[LocalizeJob]
    skipped: list[Skip]
    up_to_date: int
    regions_without_rows: list[str] = dataclasses.field(default_factory=list)
    registered: frozenset[tuple[str, str]] = frozenset()
    """The (id, region) pairs that have a variant before the run."""

    def replaced_keys(self) -> set[str]:
        """Index keys of the variants the jobs remake (their stored images are not embedded)."""
        return {IndexItem.variant_key(job.parent_id, r.region) for job in self.jobs for r in job.requests}


def plan_localize(store_path: Path, options: LocalizeOptions) -> LocalizePlan:
    """The pending (title, region) pairs of the titles CSV, grouped by poster.

    Raises:
        IndexVersionError: an unknown inpainting method, an unreadable titles CSV or an output folder that
            cannot be written.
    """
    if options.method not in METHODS:
        raise IndexVersionError(f"unknown inpainting method {options.method!r} (one of {', '.join(sorted(METHODS))})")
    wanted = wanted_regions(options.regions)
    try:
        requests, skipped = read_requests(options.titles_csv, wanted)
        prepare_out_dir(options.out_dir)
    except (TitlesFileError, OutputDirError) as err:
        raise IndexVersionError(str(err)) from None
    with open_store(store_path) as store:
        parents = {title.id: title for title in store.titles()}
        existing = {(v.parent_id, v.region): v for v in store.variants()}
    pending, up_to_date, unknown = pending_requests(requests, parents, existing, options.out_dir)
    skipped += unknown
    jobs = [
        LocalizeJob(pid, str(parents[pid].image_path), parents[pid].image_sha256, parents[pid].title, tuple(reqs))
        for pid, reqs in pending.items()
    ]
    return LocalizePlan(jobs, skipped, up_to_date, regions_without_rows(wanted, requests, skipped), frozenset(existing))


class LocalizePoster(beam.DoFn):
    """``LocalizeJob`` -> ``MadeVariant`` per region made; ``Skip`` (id, region, reason) to ``skipped``."""

    def __init__(self, out_dir: str, method: str) -> None:
        self._out_dir, self._method = Path(out_dir), method

    def setup(self) -> None:
        self._made, self._skipped, self._posters = (
            counter("variants_made"),
            counter("variants_skipped"),
            counter("posters_localized"),
        )

    def process(self, job: LocalizeJob) -> Iterator:
        self._posters.inc()
        try:
            clean = clean_poster_file(job.image_path, self._method, job.catalogue_title)
        except PosterSkipped as skip:
            yield from self._skip(job.parent_id, job.requests, skip.reason)
            return
        for request in job.requests:
            try:
                rendered = render_variant(clean, request.title, request.language)
            except PosterSkipped as skip:
                yield from self._skip(job.parent_id, [request], skip.reason)
                continue
            path = save_image(rendered.image, variant_path(self._out_dir, request.region, job.parent_id))
            self._made.inc()
            yield MadeVariant(
                job.parent_id,
                request.region,
                request.language,
                request.title,
                str(path),
                hashlib.sha256(path.read_bytes()).hexdigest(),
                job.image_sha256,
            )

    def _skip(self, parent_id: str, requests: Sequence[Request], reason: str) -> Iterator[beam.pvalue.TaggedOutput]:
        for request in requests:
            self._skipped.inc()
            yield beam.pvalue.TaggedOutput(SKIPPED, Skip(parent_id, request.region, reason))


def localize_stage(
    pipeline: beam.Pipeline, planned: LocalizePlan, options: LocalizeOptions, made_path: str, skipped_path: str
) -> beam.PCollection:
    """The made variants of ``planned``'s jobs; they and the skips are also written for :func:`register_results`."""
    results = (
        pipeline
        | "LocalizeJobs" >> beam.Create(planned.jobs)
        | "Localize"
        >> beam.ParDo(LocalizePoster(str(options.out_dir), options.method)).with_outputs(SKIPPED, main="made")
    )
    write_records(results.made | "MadeRecord" >> beam.Map(dataclasses.asdict), made_path, "Made")
    write_records(results[SKIPPED] | "SkipRecord" >> beam.Map(dataclasses.asdict), skipped_path, "Skipped")
    return results.made


def register_results(
    store_path: Path, options: LocalizeOptions, planned: LocalizePlan, made_path: str, skipped_path: str
) -> list[str]:
    """Register the made variants in the store and write ``<out>/skipped.csv``; returns the skips."""
    with open_store(store_path) as store:
        for record in read_records(made_path):
            variant = MadeVariant(**record)
            store.upsert_variant(
                variant.parent_id,
                variant.region,
                variant.language,
                variant.title,
                variant.image_path,
                source_sha256=variant.source_sha256,
            )
    skipped = planned.skipped + [Skip(**record) for record in read_records(skipped_path)]
    skipped = noting_earlier_variants(skipped, planned.registered)
    write_skip_list(options.out_dir, skipped, wanted_regions(options.regions))
    return skipped


def localize_with_beam(
    store_path: Path,
    options: LocalizeOptions,
    runner: str = LOCAL_RUNNER,
    beam_args: Sequence[str] = (),
    work_root: str | None = None,
) -> BatchSummary:
    """``localize run`` as a Beam pipeline on ``runner``: make and register the pending variants.

    Returns the run's summary, as :func:`localize.batch.run_batch` gives it; raises ``IndexVersionError`` when the
    titles CSV is unusable or a stage fails (variants written before the failure are on disk, and the next run
    registers or remakes them).
    """
    planned = plan_localize(store_path, options)
    work = new_work_folder(work_root or str(options.out_dir / ".beam"))
    made_path, skipped_path = FileSystems.join(work, "variants"), FileSystems.join(work, "skipped")
    pipeline = make_pipeline(runner, beam_args)
    localize_stage(pipeline, planned, options, made_path, skipped_path)
    try:
        counters = run_pipeline(pipeline, "localize pipeline failed, no variant registered")
        skipped = register_results(store_path, options, planned, made_path, skipped_path)
    finally:
        delete_work_folder(work)
    return BatchSummary(
        made=counters.get("variants_made", 0),
        up_to_date=planned.up_to_date,
        skipped=skipped,
        posters=len(planned.jobs),
        regions_without_rows=planned.regions_without_rows,
    )
