"""Write-then-rename helpers: a reader never sees a half-written image or CSV.

A crash mid-write leaves only a ``.<name>.<pid>.tmp`` file beside the target,
so the last good state stays usable; ``remove_stale_temporaries`` deletes the
ones whose writing process is gone.
"""

from __future__ import annotations

import csv
import logging
import os
import re
from pathlib import Path
from typing import Iterable, Sequence

from PIL import Image

log = logging.getLogger(__name__)
_TEMPORARY_NAME = re.compile(r"^\..+\.(\d+)\.tmp$")


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files under ``folder`` (recursively) left by writers that died
    mid-write; those of a live process are kept, since it may still rename them. Returns the
    removed paths."""
    removed = []
    for path in sorted(Path(folder).rglob(".*.tmp")):
        match = _TEMPORARY_NAME.match(path.name)
        if match and path.is_file() and int(match.group(1)) != os.getpid() and not _process_alive(int(match.group(1))):
            path.unlink(missing_ok=True)
            removed.append(path)
    if removed:
        log.info("removed %d temporary file(s) left by interrupted writes under %s", len(removed), folder)
    return removed


def save_image(image: Image.Image, path: str | os.PathLike, **params) -> Path:
    """Save ``image`` to ``path`` atomically (format from the suffix), creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary(path)
    try:
        image.save(temporary, format=Image.registered_extensions()[path.suffix.lower()], **params)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def write_csv(path: str | os.PathLike, header: Sequence[str], rows: Iterable[Sequence[object]]) -> Path:
    """Write a UTF-8 CSV atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary(path)
    try:
        with temporary.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(rows)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path
