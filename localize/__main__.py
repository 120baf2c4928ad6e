"""``python -m localize``: regional poster variants (``run``, ``remove``) and a before/after view (``compare``)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from posterrec_settings import ConfigError, load_settings

from PIL import Image

import posterrec_cli
from indexer import regions as region_codes
from indexer.store import StoreError, missing_store, open_store
from posterrec_atomic import save_image
from posterrec_cli import STOP

from .batch import BatchSummary, OutputDirError, TitlesFileError, review_path, run_batch
from .fonts import is_language_code
from .inpaint import DEFAULT_METHOD, METHODS
from .pipeline import NoTitle, before_after, clean_poster, localize
from .render import CannotFit, MissingGlyphs


def _add_run(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("run", help="make the regional variants a localized-titles CSV asks for")
    parser.add_argument("--titles", required=True, type=Path, help="CSV with columns id,region,language,title")
    parser.add_argument("--regions", help="comma-separated regions to make (default: every region in the CSV)")
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        help="folder for the variant images (<out>/<REGION>/<id>.png); builds read them there (and keep a copy in "
        "each index version they publish), so keep it",
    )
    parser.add_argument("--store", type=Path, help="SQLite store (default: settings.store)")
    parser.add_argument(
        "--inpaint",
        choices=sorted(METHODS),
        default=DEFAULT_METHOD,
        help=f"inpainting method (default {DEFAULT_METHOD})",
    )
    parser.add_argument(
        "--review",
        action="store_true",
        help="also write <out>/review/<id>.png per poster made or lacking one: original, erase mask and each of its "
        "variants in <out>, side by side and captioned",
    )
    beam = parser.add_argument_group("Apache Beam pipeline")
    beam.add_argument(
        "--runner",
        help="run as a Beam pipeline on this runner: FnApiRunner (in this process; add -- --direct_num_workers=N "
        "--direct_running_mode=multi_processing for N local workers), FlinkRunner, SparkRunner, DataflowRunner, ...",
    )
    beam.add_argument("--work-dir", help="folder for the pipeline's hand-back files (default: <out>/.beam)")
    beam.add_argument("beam_options", nargs="*", metavar="-- BEAM_OPTION", help="standard Beam pipeline options")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    regions = region_list(args.parser, args.regions) if args.regions is not None else None
    if args.runner is not None:
        return _run_with_beam(args, regions)
    if args.beam_options:
        args.parser.error(f"unexpected argument(s) {' '.join(args.beam_options)} (Beam options need --runner)")
    if args.work_dir:
        args.parser.error("--work-dir needs --runner")
    started = time.perf_counter()
    try:
        store_path = existing_store(args.store or load_settings().store)
        with open_store(store_path) as store:
            summary = run_batch(store, args.titles, args.out, regions, args.inpaint, review=args.review)
    except (ConfigError, TitlesFileError, OutputDirError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before or after the variants are made (run_batch reports one during)
        print("interrupted: the variants made so far are registered; run the same command to finish", file=sys.stderr)
        return STOP.exit_code
    seconds = time.perf_counter() - started
    for skip in summary.skipped:
        print(f"skipped {skip}")
    print(summary)
    rate = summary.posters / seconds if seconds else 0.0
    print(
        f"{summary.posters} poster(s) processed in {seconds:.1f} s ({rate:.2f} posters/s); skip list: {args.out / 'skipped.csv'}"
    )
    return STOP.exit_code if summary.interrupted else _exit_code(summary)


def _exit_code(summary: BatchSummary) -> int:
    """0 when the run made a variant or found one up to date; 1, said on stderr, when it has none to show."""
    if summary.made or summary.up_to_date:
        return 0
    why = "every row was skipped" if summary.skipped else "the titles file has no row for the regions asked"
    print(f"error: no variant made or up to date: {why}", file=sys.stderr)
    return 1


BEAM_INTERRUPTED = (
    "interrupted: a Beam run registers its variants when its pipeline ends, so none of this run's is registered;"
    " run the same command to make them"
)


def existing_store(path: Path) -> Path:
    """``path`` when a store is there; raises ConfigError, so that a mistyped path is not made a new, empty store."""
    if problem := missing_store(path):
        raise ConfigError(problem)
    return Path(path)


def _run_with_beam(args: argparse.Namespace, regions: list[str] | None) -> int:
    """``run`` as a Beam pipeline (:func:`indexer.beam_localize.localize_with_beam`): the same variants, skips and store."""
    from indexer.beam_localize import LocalizeOptions, localize_with_beam  # Beam loads only for pipeline runs
    from indexer.beam_runner import runner_problem
    from indexer.published import IndexVersionError

    if problem := runner_problem(args.runner):
        args.parser.error(f"--runner {args.runner}: {problem}")
    if args.review:
        args.parser.error("--review is made by the single-process run only (leave out --runner)")
    started = time.perf_counter()
    options = LocalizeOptions(args.titles, args.out, regions, args.inpaint)
    try:
        store = existing_store(args.store or load_settings().store)
        summary = localize_with_beam(store, options, args.runner, args.beam_options, args.work_dir)
    except (ConfigError, IndexVersionError, KeyboardInterrupt) as err:
        if STOP.requested:  # Beam reports a KeyboardInterrupt in a stage as the stage failing
            print(BEAM_INTERRUPTED, file=sys.stderr)
            return STOP.exit_code
        print(f"error: {err}", file=sys.stderr)
        return 2
    for skip in summary.skipped:
        print(f"skipped {skip}")
    print(summary)
    print(f"in {time.perf_counter() - started:.1f} s on {args.runner}; skip list: {args.out / 'skipped.csv'}")
    return _exit_code(summary)


def _add_remove(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "remove",
        help="withdraw registered variants, so that the next index build leaves them out",
        description="Withdraw registered variants, so that the next index build leaves them out. A later run "
        "whose titles file still has a row for one makes it again: take the row out of the file too.",
    )
    parser.add_argument("id", help="the poster's id")
    parser.add_argument("regions", help="comma-separated regions of its variants to withdraw")
    parser.add_argument("--store", type=Path, help="SQLite store (default: settings.store)")
    parser.set_defaults(run=_remove)


def _remove(args: argparse.Namespace) -> int:
    """Withdraw each named variant and drop the review sheet that shows it; 1 when one of them is not
    registered (the others are still withdrawn)."""
    regions = region_list(args.parser, args.regions)
    missing = 0
    with open_store(existing_store(args.store or load_settings().store)) as store:
        if store.title(args.id) is None:
            print(f"error: no title {args.id!r} in the store {store.path}", file=sys.stderr)
            return 1
        for region in regions:
            removed = store.remove_variant(args.id, region)
            if removed is None:
                print(f"error: no {region} variant of {args.id!r} is registered", file=sys.stderr)
                missing += 1
                continue
            print(f"withdrew {args.id} {removed.region} ({removed.title!r}); its image stays at {removed.image_path}")
            sheet = review_path(Path(removed.image_path).parent.parent, args.id)
            if sheet.is_file():
                sheet.unlink()
                print(f"removed the poster's review sheet {sheet}, which may show it (--review makes it again)")
    return 1 if missing else 0


def region_list(parser: argparse.ArgumentParser, text: str) -> list[str]:
    """The regions of ``text`` (:func:`indexer.regions.region_list`); exits through ``parser`` when they are bad."""
    try:
        return region_codes.region_list(text)
    except ValueError as err:
        parser.error(f"regions: {err}")


def _add_compare(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("compare", help="write a side-by-side before/after PNG of one poster")
    parser.add_argument("image", type=Path, help="poster image")
    parser.add_argument("--title", required=True, help="the localized title")
    parser.add_argument("--language", required=True, help="its language (BCP-47, e.g. de, ja, ar, hi)")
    parser.add_argument("--out", required=True, type=Path, help="image to write (PNG, or another format by its suffix)")
    parser.add_argument("--inpaint", choices=sorted(METHODS), default=DEFAULT_METHOD)
    parser.add_argument(
        "--original-title", help="the poster's title as the catalogue spells it (found by its text, else by prominence)"
    )
    parser.add_argument("--debug", action="store_true", help="print every detected line with its scores")
    parser.set_defaults(run=_compare)


def _compare(args: argparse.Namespace) -> int:
    if args.out.suffix.lower() not in Image.registered_extensions() or args.out.is_dir():
        print(f"error: --out {args.out}: name an image file to write, such as before_after.png", file=sys.stderr)
        return 1
    if args.out.exists() and args.image.exists() and args.out.samefile(args.image):
        print(f"error: --out {args.out} is the poster it reads: name a new file", file=sys.stderr)
        return 1
    if not args.title.strip():
        print("error: --title is empty: give the localized title", file=sys.stderr)
        return 1
    if not is_language_code(args.language):
        print(f"error: --language {args.language!r} is not a BCP-47 language code (such as de, ja)", file=sys.stderr)
        return 1
    try:
        with Image.open(args.image) as image:
            clean = clean_poster(image, args.inpaint, args.original_title)
        if args.debug:
            print(clean.detection.describe())
        rendered = localize(clean, args.title, args.language)
    except (OSError, NoTitle, CannotFit, MissingGlyphs) as err:
        print(f"error: {args.image}: {err}", file=sys.stderr)
        return 1
    try:
        save_image(before_after(clean, rendered), args.out)
    except OSError as err:
        print(f"error: --out {args.out} cannot be written: {err.strerror or err}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} (title box {clean.box}, {rendered.layout.size} px, {len(rendered.layout.lines)} line(s))")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser, commands = posterrec_cli.command_parser("python -m localize", __doc__)
    _add_run(commands)
    _add_remove(commands)
    _add_compare(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    return posterrec_cli.main(build_parser(), argv, (StoreError,))


if __name__ == "__main__":
    posterrec_cli.exit_with(main())
