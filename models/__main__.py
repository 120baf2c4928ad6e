"""``python -m models train|evaluate|train-behaviour``: the poster embedding model, its measure, the behaviour model.

Defaults come from ``posterrec_settings`` (backbone, weights, letterboxing,
embedding size, margin, batch size); flags override them for one run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import posterrec_settings
from posterrec_settings import ConfigError

import posterrec_cli
from models.catalog import ALLOW_OUTSIDE_HELP, CatalogError, CatalogRow, format_errors, read_catalog
from models.epoch_checkpoints import checkpoint_folder, finished_epochs
from models.evaluation import CollapseError
from models.labels import LABEL_SCHEMES
from posterrec_atomic import check_writable_folder, file_in_the_way

PRECISION_K = 10
"""The k of the precision@k that ``evaluate`` reports."""


def interrupted_training(args: argparse.Namespace) -> str:
    """What a training run stopped by Ctrl-C or SIGTERM left: the epochs it finished (with ``--resume``, those
    of the run it continues), or none. Without ``--resume`` an earlier run's checkpoints, which the run would
    have discarded, are not counted: only a state written since ``args.started`` (when the command line was
    read)."""
    work_dir = checkpoint_folder(args.out)
    done = finished_epochs(work_dir, written_since=0.0 if args.resume else args.started)
    if not done:
        return "no epoch had finished: run the same command to start again"
    return f"{done} finished epoch(s) kept in {work_dir}: run the same command with --resume to continue"


def _rows(args: argparse.Namespace) -> list[CatalogRow]:
    """Good rows of ``args.catalog``; bad rows stop the run unless ``args.skip_bad_rows``."""
    catalog, skip_bad_rows = args.catalog, args.skip_bad_rows
    report = read_catalog(catalog, allow_outside=args.allow_outside_images)
    if report.errors:
        print(format_errors(report.errors), file=sys.stderr)
        if not skip_bad_rows and report.rows:
            bad_rows = len({error.line for error in report.errors})
            raise SystemExit(f"error: {catalog}: {bad_rows} bad row(s); fix them or pass --skip-bad-rows")
    if not report.rows:
        raise SystemExit(f"error: {catalog}: no usable rows")
    return report.rows


def _check_export_folder(
    parser: argparse.ArgumentParser, out: Path, export_format: str, files: set[str], manifest_file: str
) -> None:
    """Stop with a usage error unless a model of ``export_format`` can be exported to ``out``, which the export
    replaces whole: a new or empty folder, or an earlier export of that format (read from its ``manifest_file``)
    holding only its ``files``."""
    _check_folder_path(parser, "--out", out)
    if not out.exists() or not any(out.iterdir()):
        return
    try:
        found, unreadable = json.loads((out / manifest_file).read_text(encoding="utf-8")).get("format"), False
    except (OSError, ValueError, AttributeError):
        found, unreadable = None, (out / manifest_file).exists()
    added = sorted(path.name for path in out.iterdir() if path.name not in files)
    if found == export_format:
        if not added:
            return
        what = f"an earlier export and also {', '.join(added)}"
    elif found:
        what = f"a {found} model, not a {export_format} one"
    elif unreadable:
        what = f"a {manifest_file} that cannot be read (a damaged export?)"
    else:
        what = "no exported model"
    parser.error(f"--out {out} holds {what}, and the export would replace it all: name a new folder")


def _check_folder_path(parser: argparse.ArgumentParser, option: str, folder: Path) -> None:
    """Stop with a usage error when ``folder``, or the nearest of its parents that exists, is not a folder."""
    in_the_way = file_in_the_way(folder)
    if in_the_way:
        where = "is a file" if in_the_way == folder else f"is inside {in_the_way}, a file"
        parser.error(f"{option} {folder} {where}, not a folder")


def _train(args: argparse.Namespace) -> int:
    from models.backbones import weights_problem
    from models.embedder import EXPORT_FILES, FORMAT, MANIFEST_FILE
    from models.training import TrainConfig, train

    _check_export_folder(args.parser, args.out, FORMAT, EXPORT_FILES, MANIFEST_FILE)
    if args.cache_dir:
        _check_folder_path(args.parser, "--cache-dir", args.cache_dir)
    settings = posterrec_settings.load_settings()

    config = TrainConfig.from_settings(
        settings,
        backbone=args.backbone,
        weights=args.weights,
        letterbox=args.letterbox,
        batch_size=args.batch_size,
        warmup_epochs=args.warmup_epochs,
        head_only_epochs=args.head_epochs,
        max_unfrozen_blocks=args.unfreeze_blocks,
        triplet_epochs=args.triplet_epochs,
        label_scheme=args.label_scheme,
        seed=args.seed,
    )
    problem = weights_problem(config.weights)
    if problem:
        args.parser.error(f"{'--weights' if args.weights else 'the weights setting'}: {problem}")
    rows = _rows(args)
    cache_dir = args.cache_dir or settings.home / "cache" / "features"
    for folder in (args.out.parent, cache_dir):  # found unwritable now, not after the features or the epochs
        check_writable_folder(folder)
    manifest = train(rows, args.out, config, cache_dir, resume=args.resume)
    print(json.dumps({"model": str(args.out), "weights": manifest["weights"], **manifest["metrics"]}, indent=2))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from models.data import split_by_id
    from models.embedder import load_embedder
    from models.evaluation import retrieval_metrics

    rows = _rows(args)  # the catalogue and its split before the (slow) model load, so that they are reported at once
    if args.split == "test":
        rows = split_by_id(rows)[1]
    if len(rows) < 2:
        hint = "; evaluate on every row with --split all" if args.split == "test" else ""
        raise SystemExit(f"error: {args.catalog}: fewer than 2 posters in the {args.split} split{hint}")
    if len(rows) <= PRECISION_K:
        print(
            f"warning: only {len(rows)} posters in the {args.split} split: each has fewer than {PRECISION_K} others, "
            f"so precision@{PRECISION_K} is not comparable with a larger catalogue's",
            file=sys.stderr,
        )
    embedder = load_embedder(args.model)
    embeddings = embedder.embed_images([row.image for row in rows])
    metrics = retrieval_metrics(embeddings, [row.genres for row in rows], PRECISION_K)
    print(json.dumps({"model": str(args.model), "split": args.split, "posters": len(rows), **metrics}, indent=2))
    return 0


def _train_behaviour(args: argparse.Namespace) -> int:
    from models.behaviour import (
        EXPORT_FILES,
        FORMAT,
        MANIFEST_FILE,
        BehaviourConfig,
        read_watch_data,
        train_behaviour,
    )

    _check_export_folder(args.parser, args.out, FORMAT, EXPORT_FILES, MANIFEST_FILE)
    settings = posterrec_settings.load_settings()

    data, source = read_watch_data(args.store or settings.store, args.index or settings.index_root)
    check_writable_folder(args.out.parent)  # found unwritable now, not after the epochs
    chosen = {
        "epochs": args.epochs,
        "embedding_dim": args.embedding_dim,
        "context_length": args.context_length,
        "id_dropout": args.id_dropout,
        "seed": args.seed,
    }
    config = BehaviourConfig(**{name: value for name, value in chosen.items() if value is not None})
    manifest = train_behaviour(data, config, args.out, resume=args.resume, extra_manifest=source)
    print(
        json.dumps(
            {"model": str(args.out), "vocabulary_size": manifest["vocabulary_size"], **manifest["metrics"]}, indent=2
        )
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser, commands = posterrec_cli.command_parser("python -m models", __doc__.splitlines()[0])

    train = commands.add_parser("train", help="train on a catalogue and export the embedding model")
    train.add_argument("--catalog", type=Path, required=True, help="catalogue CSV (id,title,year,genres,image)")
    train.add_argument(
        "--out",
        type=Path,
        required=True,
        help="folder to export the model to: a new or empty one, or an earlier export (replaced)",
    )
    train.add_argument(
        "--backbone",
        choices=posterrec_settings.BACKBONE_NAMES,
        help="ImageNet backbone (default from settings; tiny is for tests)",
    )
    train.add_argument("--weights", help="imagenet, none or a weights file path")
    train.add_argument(
        "--letterbox",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="pad posters to square (default from settings) or squash them",
    )
    train.add_argument(
        "--batch-size", type=posterrec_cli.whole_number(1), help="posters a training step (default from settings)"
    )
    train.add_argument("--warmup-epochs", type=posterrec_cli.whole_number(0), help="genre warm-up epochs in all")
    train.add_argument(
        "--head-epochs",
        type=posterrec_cli.whole_number(0),
        help="of those, head-only epochs on cached backbone features",
    )
    train.add_argument(
        "--unfreeze-blocks",
        type=posterrec_cli.whole_number(0),
        help="most backbone top blocks unfrozen, one more per warm-up epoch after the head-only ones",
    )
    train.add_argument("--triplet-epochs", type=posterrec_cli.whole_number(0), help="triplet semi-hard epochs")
    train.add_argument("--label-scheme", choices=LABEL_SCHEMES, help="weak triplet classes")
    train.add_argument("--seed", type=int, default=0, help="random seed of initialisation and batches (default 0)")
    train.add_argument("--cache-dir", type=Path, help="feature cache (default <home>/cache/features)")
    train.add_argument("--resume", action="store_true", help="continue an interrupted run of the same settings")
    train.add_argument(
        "--skip-bad-rows", action="store_true", help="train on the good rows of a catalogue with bad ones"
    )
    train.add_argument("--allow-outside-images", action="store_true", help=ALLOW_OUTSIDE_HELP)
    train.set_defaults(run=_train, interrupted=interrupted_training, started=time.time())

    evaluate = commands.add_parser("evaluate", help="MAP@R and precision@10 of an exported model")
    evaluate.add_argument("--model", type=Path, required=True, help="folder of a model exported by train")
    evaluate.add_argument(
        "--catalog", type=Path, required=True, help="catalogue CSV to measure on (id,title,year,genres,image)"
    )
    evaluate.add_argument(
        "--split", choices=["test", "all"], default="test", help="the held-out split by id (default) or every row"
    )
    evaluate.add_argument(
        "--skip-bad-rows", action="store_true", help="evaluate on the good rows of a catalogue with bad ones"
    )
    evaluate.add_argument("--allow-outside-images", action="store_true", help=ALLOW_OUTSIDE_HELP)
    evaluate.set_defaults(run=_evaluate)

    behaviour = commands.add_parser(
        "train-behaviour", help="train the behaviour model (tfrs) on the store's watch events and export it"
    )
    behaviour.add_argument(
        "--out",
        type=Path,
        required=True,
        help="folder to export the behaviour model to: a new or empty one, or an earlier export (replaced)",
    )
    behaviour.add_argument("--store", type=Path, help="SQLite store with events (default: settings.store)")
    behaviour.add_argument(
        "--index",
        type=Path,
        help="index root whose current version gives the poster vectors (default: settings.index_root)",
    )
    behaviour.add_argument("--epochs", type=posterrec_cli.whole_number(1), help="training epochs")
    behaviour.add_argument("--embedding-dim", type=posterrec_cli.whole_number(1), help="size of the title id embedding")
    behaviour.add_argument(
        "--context-length", type=posterrec_cli.whole_number(1), help="latest titles of a history that form its query"
    )
    behaviour.add_argument(
        "--id-dropout",
        type=posterrec_cli.fraction_below_one,
        help="share of ids hidden in training so posters learn alone",
    )
    behaviour.add_argument("--seed", type=int, help="random seed of initialisation and batches (default 0)")
    behaviour.add_argument("--resume", action="store_true", help="continue an interrupted run of the same settings")
    behaviour.set_defaults(run=_train_behaviour, interrupted=interrupted_training, started=time.time())
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return posterrec_cli.main(
        build_parser(), argv, (CatalogError, ConfigError, FileNotFoundError, ValueError, CollapseError)
    )


if __name__ == "__main__":
    posterrec_cli.exit_with(main())
