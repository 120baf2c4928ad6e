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
        try:
            manifest = json.loads(
                (root / published.VERSIONS / version / published.MANIFEST).read_text(encoding="utf-8")
            )
        except (OSError, ValueError):
            manifest = {}
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
    """Serve ``version``, by default the newest one served before the current one; returns its name."""
    current = published.current_version(root)
    if version is None:
        older = [v for v in published.served_versions(root) if current is not None and v < current]
        if not older:
            raise published.IndexVersionError(
                f"index root {root}: no version older than {current or 'none'} to roll back to"
            )
        version = older[-1]
    published.set_current(root, version)
    return version


def add_command(commands: argparse._SubParsersAction) -> None:
    listing = commands.add_parser("versions", help="list published index versions")
    listing.add_argument("--out", type=Path, help="index root (default: settings.index_root)")
    listing.set_defaults(run=_list)
    back = commands.add_parser("rollback", help="serve an earlier index version")
    back.add_argument("version", nargs="?", help="version to serve (default: the one before the current)")
    back.add_argument("--out", type=Path, help="index root (default: settings.index_root)")
    back.set_defaults(run=_rollback)


def _list(args: argparse.Namespace) -> int:
    root = args.out or load_settings().index_root
    rows = describe_versions(root)
    if not rows:
        print(f"{root}: no published versions")
    for row in rows:
        mark = "*" if row["current"] else " "
        never = "  (never served: left by a build stopped before it switched CURRENT)" if row["never_served"] else ""
        print(
            f"{mark} {row['version']}  items={row['items']}  shards={row['shards']}  recall@10={row['recall_at_10']}  history recall@10={row['history_recall_at_10']}  built={row['built_at']}{never}"
        )
    return 0


def _rollback(args: argparse.Namespace) -> int:
    root = args.out or load_settings().index_root
    print(f"{root}: now serving {rollback(root, args.version)}")
    return 0
