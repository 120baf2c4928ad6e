"""Rebuild throughput end to end (localize + embed + build): the Beam pipeline on the local runner with 1 and 2
worker processes against the single-process commands.

A sample of the real posters (Kaggle "Movie Genre from its Poster", ``../shared/data``) is ingested into a
store, and a localized-titles CSV asks for ``--regions`` variants of each (demo-vocabulary titles: real
translations of placeholder titles). Each configuration starts from a copy of that store with no variant, an
empty variant folder and a cold embedding cache, then:

- single process: ``localize run`` (:func:`localize.batch.run_batch`), then ``indexer build``;
- Beam, two commands: ``localize run --runner`` then ``indexer build --runner``, the same Beam options for both;
- Beam, one pipeline: ``indexer build --runner --titles``, localizing on the way to the embedder.

Every poster is localized, every original and made variant read, decoded and embedded, and the index built,
verified and published. Configurations run interleaved, ``--rounds`` times each; the table gives medians.
Scaling efficiency is the 2-worker rate over twice the 1-worker rate.

    python bench/bench_beam.py [--localize-sample 80] [--regions 2] [--rounds 1] [--model var/bench/model-effl0]
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from posterrec_settings import Settings, load_settings  # noqa: E402  (sets TF_USE_LEGACY_KERAS before TensorFlow)

from localize import vocab  # noqa: E402

MULTI = ["--direct_running_mode=multi_processing"]
ONE_WORKER = ["--direct_num_workers=1", *MULTI]
TWO_WORKERS = ["--direct_num_workers=2", *MULTI]
SINGLE = "single process: localize run, then indexer build"
BEAM_1 = "Beam, 1 worker process: localize run --runner, then build --runner"
BEAM_2 = "Beam, 2 worker processes: localize run --runner, then build --runner"
FUSED_1 = "Beam, 1 worker process: build --runner --titles (one pipeline)"
FUSED_2 = "Beam, 2 worker processes: build --runner --titles (one pipeline)"
TITLE_FIELDS = ["id", "region", "language", "title"]


@dataclasses.dataclass(frozen=True)
class Workspace:
    """What every configuration starts from: the ingested store (no variant yet), the titles CSV, the model."""

    work: Path
    store: Path
    titles: Path
    model: Path
    batch_size: int

    def fresh(self) -> tuple[Path, Path, Settings]:
        """A copy of the store, an empty variant folder and settings over an empty index root, for one rebuild."""
        run = Path(tempfile.mkdtemp(prefix="run-", dir=self.work))
        store = run / "store.sqlite3"
        shutil.copyfile(self.store, store)
        settings = load_settings(
            env={}, home=run / "home", store=store, index_root=run / "index", batch_size=self.batch_size
        )
        return store, run / "variants", settings


@dataclasses.dataclass(frozen=True)
class Timing:
    """One rebuild: localize and embed+build seconds (None where one pipeline does both), totals and counts."""

    localize: float | None
    build: float | None
    total: float
    variants: int
    items: int


def sample_rows(data: Path, count: int) -> tuple[list[dict], list[str]]:
    """The first ``count`` rows of ``data/catalog.csv`` with absolute image paths (the data is never written)."""
    with (data / "catalog.csv").open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows = [{**row, "image": str(data / row["image"])} for _, row in zip(range(count), reader)]
        return rows, list(reader.fieldnames or [])


def write_csv(path: Path, fields: list[str], rows: list[dict]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


def titles_rows(rows: list[dict], regions: int) -> list[dict]:
    """``regions`` localized titles per poster, in the first demo regions' languages."""
    wanted = list(vocab.REGION_LANGUAGES.items())[:regions]
    return [
        {
            "id": row["id"],
            "region": region,
            "language": language,
            "title": vocab.title_in(i % vocab.title_count(), language),
        }
        for i, row in enumerate(rows)
        for region, language in wanted
    ]


def single_process(ws: Workspace, name: str) -> Timing:
    """``localize run`` in this process, then ``indexer build``."""
    from indexer.build import build_index
    from indexer.store import open_store
    from localize.batch import run_batch

    store, variants, settings = ws.fresh()
    started = time.perf_counter()
    with open_store(store) as opened:
        localized = run_batch(opened, ws.titles, variants, progress=False)
    localized_at = time.perf_counter()
    built = build_index(ws.model, settings, store, settings.index_root)
    finished = time.perf_counter()
    assert built.embedded == built.items, f"{name}: {built}"
    return Timing(
        localized_at - started,
        finished - localized_at,
        finished - started,
        localized.made,
        built.items,
    )


def beam_two_commands(beam_args: list[str]) -> Callable[[Workspace, str], Timing]:
    """``localize run --runner`` then ``indexer build --runner``, both with ``beam_args``."""

    def rebuild(ws: Workspace, name: str) -> Timing:
        from indexer.beam_localize import LocalizeOptions, localize_with_beam
        from indexer.beam_pipeline import build_with_beam
        from indexer.beam_runner import LOCAL_RUNNER

        store, variants, settings = ws.fresh()
        options = LocalizeOptions(ws.titles, variants)
        started = time.perf_counter()
        made = localize_with_beam(store, options, LOCAL_RUNNER, beam_args).made
        localized_at = time.perf_counter()
        built = build_with_beam(ws.model, settings, store, settings.index_root, beam_args=beam_args)
        finished = time.perf_counter()
        assert built.embedded == built.items and not built.bad_posters, f"{name}: {built}"
        return Timing(localized_at - started, finished - localized_at, finished - started, made, built.items)

    return rebuild


def beam_one_pipeline(beam_args: list[str]) -> Callable[[Workspace, str], Timing]:
    """``indexer build --runner --titles``: localize, embed and build in one pipeline with ``beam_args``."""

    def rebuild(ws: Workspace, name: str) -> Timing:
        from indexer.beam_localize import LocalizeOptions
        from indexer.beam_pipeline import build_with_beam

        store, variants, settings = ws.fresh()
        options = LocalizeOptions(ws.titles, variants)
        started = time.perf_counter()
        built = build_with_beam(ws.model, settings, store, settings.index_root, beam_args=beam_args, localize=options)
        seconds = time.perf_counter() - started
        assert built.embedded == built.items and not built.bad_posters, f"{name}: {built}"
        return Timing(
            None,
            None,
            seconds,
            built.counters.get("variants_made", 0),
            built.items,
        )

    return rebuild


CONFIGS: dict[str, Callable[[Workspace, str], Timing]] = {
    SINGLE: single_process,
    BEAM_1: beam_two_commands(ONE_WORKER),
    BEAM_2: beam_two_commands(TWO_WORKERS),
    FUSED_1: beam_one_pipeline(ONE_WORKER),
    FUSED_2: beam_one_pipeline(TWO_WORKERS),
}


def warm_up(ws: Workspace, rows: list[dict]) -> None:
    """Imports, the OCR models and the first model load, untimed: two posters localized, the sample built."""
    warm = dataclasses.replace(
        ws, titles=write_csv(ws.work / "warm-titles.csv", TITLE_FIELDS, titles_rows(rows[:2], 1))
    )
    single_process(warm, "warm-up")


def median(values: list[float | None]) -> float | None:
    return None if values[0] is None else statistics.median(values)


def seconds_and_rate(seconds: float | None, count: int) -> str:
    return "–" if seconds is None else f"{seconds:.1f} s, {count / seconds:.2f}/s"


def print_table(timings: dict[str, list[Timing]], posters: int, args: argparse.Namespace) -> None:
    print(
        f"\nRebuild end to end of {posters} real posters with {args.regions} localized title(s) asked for each, "
        f"model {args.model.name}, batch {args.batch_size}, {os.cpu_count()} CPUs, median of {args.rounds}"
    )
    print(
        "| configuration | variants made / images embedded | localize (posters/s) | embed + build (images/s) "
        "| end to end (posters/s) | vs single process |\n|---|---:|---:|---:|---:|---:|"
    )
    rates = {}
    for name, runs in timings.items():
        last = runs[-1]
        total = statistics.median(run.total for run in runs)
        rates[name] = posters / total
        print(
            f"| {name} | {last.variants} / {last.items} "
            f"| {seconds_and_rate(median([r.localize for r in runs]), posters)} "
            f"| {seconds_and_rate(median([r.build for r in runs]), last.items)} "
            f"| {seconds_and_rate(total, posters)} | {rates[name] / rates[SINGLE]:.2f}x |"
        )
    for one, two, label in ((BEAM_1, BEAM_2, "two commands"), (FUSED_1, FUSED_2, "one pipeline")):
        print(f"\nScaling efficiency, {label}, 2 worker processes over 1: {rates[two] / (2 * rates[one]):.0%}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help="real poster data folder")
    parser.add_argument("--localize-sample", type=int, default=80, help="posters to localize and rebuild (default 80)")
    parser.add_argument("--regions", type=int, default=2, help="localized titles per poster (default 2)")
    parser.add_argument("--rounds", type=int, default=1, help="rebuilds per configuration, interleaved (default 1)")
    parser.add_argument("--model", type=Path, default=REPO / "var" / "bench" / "model-effl0", help="exported model")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if not (args.data / "catalog.csv").is_file():
        parser.error(f"no catalogue at {args.data / 'catalog.csv'}: the real posters sit beside the repository")
    if not (args.model / "manifest.json").is_file():
        parser.error(
            f"{args.model} is not an exported model: make one with `python -m models train --catalog "
            f"{args.data / 'catalog.csv'} --out {args.model} --backbone efficientnet_lite0 --weights imagenet`"
        )
    if not 1 <= args.regions <= len(vocab.REGION_LANGUAGES):
        parser.error(f"--regions {args.regions}: between 1 and {len(vocab.REGION_LANGUAGES)}")

    from indexer.ingest import ingest_catalog

    with tempfile.TemporaryDirectory(prefix="bench-beam-") as tmp:
        work = Path(tmp)
        rows, fields = sample_rows(args.data, args.localize_sample)
        store = work / "store.sqlite3"
        ingested = ingest_catalog(write_csv(work / "catalog.csv", fields, rows), store, allow_outside=True)
        if ingested.summary is None:
            parser.error(f"the sample of {args.data / 'catalog.csv'} does not ingest: {ingested.report}")
        titles = write_csv(work / "titles.csv", TITLE_FIELDS, titles_rows(rows, args.regions))
        ws = Workspace(work, store, titles, args.model, args.batch_size)
        warm_up(ws, rows)
        timings: dict[str, list[Timing]] = {name: [] for name in CONFIGS}
        for round_ in range(args.rounds):
            for name, rebuild in CONFIGS.items():
                timing = rebuild(ws, name)
                timings[name].append(timing)
                print(f"round {round_ + 1}: {name}: {timing}", file=sys.stderr, flush=True)
    print_table(timings, len(rows), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
