"""``python -m indexer versions`` and ``rollback``: see and switch the published index versions."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from posterrec_settings import load_settings

from . import published
from .shards import ShardError, shard_manifests


def describe_versions(root: Path) -> list[dict]:
    """One row per version, oldest first, with what its manifest says (``shards`` None when it cannot be read)."""
    current = published.current_version(root)
    served = published.served_versions(root)
    rows = []
    for version in published.list_versions(root):
        manifest = _manifest(root, version)
        rows.append(
            {
                "version": version,
                "current": version == current,
                "never_served": version not in served,
                "items": manifest.get("item_count"),
                "shards": _shard_count(manifest),
                "recall_at_10": manifest.get("recall_at_10"),
                "history_recall_at_10": manifest.get("history_recall_at_10"),
                "built_at": manifest.get("built_at"),
                "readable": bool(manifest),
            }
        )
    return rows


def _shard_count(manifest: dict) -> int | None:
    """How many shards a version's manifest records (1 for an unsharded version), None for no readable manifest."""
    if not manifest:
        return None
    try:
        entries = shard_manifests(manifest)
    except ShardError:
        return None
    return 1 if entries is None else len(entries)


def rollback(root: Path, version: str | None = None) -> str:
    """Serve ``version``, by default the one served before the current one was published (its manifest's
    ``previous_version``, when it is still there), else the newest served version older than the current one;
    returns its name.

    Raises:
        IndexVersionError: no index root, no such version or none to go back to, or the version cannot be
            loaded (it is loaded first, as the service will load it, and not served if that fails).
    """
    _check_root(root)
    version = _version_before(root) if version is None else version
    published.open_version(root, version)  # refuses a version the root does not have, naming those it has
    published.set_current(root, version)
    return version


def _check_root(root: Path) -> None:
    """Raise IndexVersionError when ``root`` is no folder, so that a mistyped ``--out`` is not taken for an empty root."""
    if not Path(root).is_dir():
        problem = "is a file, not a folder" if Path(root).exists() else "does not exist"
        raise published.IndexVersionError(f"index root {root} {problem}")


def _version_before(root: Path) -> str:
    current = published.current_version(root)
    versions = published.list_versions(root)
    if versions and current not in versions:
        named = f"names {current!r}, which is not a version here" if current else "names no version"
        raise published.IndexVersionError(
            f"index root {root}: CURRENT {named}, so there is none to go back from; name the version to serve"
        )
    served = published.served_versions(root)
    previous = _manifest(root, current).get("previous_version") if current else None
    if previous in served and previous != current:
        return previous
    older = [v for v in served if current is not None and v < current]
    if not older:
        raise published.IndexVersionError(
            f"index root {root}: no version older than {current or 'none'} to roll back to"
        )
    return older[-1]


def _manifest(root: Path, version: str) -> dict:
    """``version``'s manifest, empty when it cannot be read."""
    try:
        return json.loads((Path(root) / published.VERSIONS / version / published.MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def add_command(commands: argparse._SubParsersAction) -> None:
    listing = commands.add_parser(
        "versions",
        help="list published index versions",
        description="List the published index versions, oldest first; * marks the one served (CURRENT).",
    )
    listing.add_argument("--out", type=Path, help="index root (default: settings.index_root)")
    listing.add_argument(
        "--check", action="store_true", help="load each version as the service would, and name those it would refuse"
    )
    listing.set_defaults(run=_list)
    back = commands.add_parser(
        "rollback",
        help="serve an earlier index version",
        description="Serve an earlier index version: running services swap to it within index_poll_seconds. "
        "It is loaded first, and refused if it cannot be.",
    )
    back.add_argument(
        "version", nargs="?", help="version to serve (default: the one served before the current one was published)"
    )
    back.add_argument("--out", type=Path, help="index root (default: settings.index_root)")
    back.set_defaults(run=_rollback)


def _list(args: argparse.Namespace) -> int:
    root = args.out or load_settings().index_root
    _check_root(root)
    rows = describe_versions(root)
    if not rows:
        print(f"{root}: no published versions")
    current_broken = False
    for row in rows:
        mark = "*" if row["current"] else " "
        problem = _load_problem(root, row["version"]) if args.check and row["readable"] else None
        current_broken |= row["current"] and (problem is not None or not row["readable"])
        if not row["readable"]:
            print(f"{mark} {row['version']}  broken: its manifest cannot be read (rollback refuses it)")
            continue
        never = "  (never served: left by a build stopped before it switched CURRENT)" if row["never_served"] else ""
        print(
            f"{mark} {row['version']}  items={row['items']}  shards={row['shards']}  recall@10={row['recall_at_10']}  history recall@10={row['history_recall_at_10']}  built={row['built_at']}{never}"
        )
        if problem:
            print(f"    broken: {problem}")
    current = published.current_version(root)
    if rows and current not in {row["version"] for row in rows}:
        named = f"names {current!r}, which is not a version here" if current else "names no version"
        print(f"warning: CURRENT {named}; roll back to one of these")
        return 1
    if current_broken and args.check:
        print("warning: the served version cannot be loaded; roll back to one that can")
        return 1
    return 0


def _load_problem(root: Path, version: str) -> str | None:
    """Why the service would refuse ``version`` when it loads it, or None."""
    try:
        published.open_version(root, version)
    except published.IndexVersionError as err:
        return str(err)
    return None


def _rollback(args: argparse.Namespace) -> int:
    root = args.out or load_settings().index_root
    print(f"{root}: now serving {rollback(root, args.version)}")
    return 0
