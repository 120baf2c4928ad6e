"""Write-then-rename: a reader sees the old file or directory or the new one, never half of one.

Every stage that writes something another process reads (models, index versions, variant images, CSV
reports, caches) writes it under a temporary name beside its target and renames it into place once it
is complete. A crash mid-write leaves the last good state and, at worst, a temporary file named
``.<name>.<pid>.tmp<suffix>`` that :func:`remove_stale_temporaries` can delete later.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from PIL import Image

log = logging.getLogger(__name__)

_TEMPORARY_NAME = re.compile(r"^\..+\.(\d+)\.tmp(\.[^.]+)?$")


def nearest_existing(path: str | os.PathLike) -> Path | None:
    """``path``, or the nearest of its parents that exists; None when a parent cannot be searched."""
    path = Path(path)
    try:
        return next((p for p in (path, *path.parents) if p.exists()), None)
    except OSError:
        return None


def file_in_the_way(path: str | os.PathLike) -> Path | None:
    """``path``, or the nearest of its parents that exists, when that is a file rather than a folder: what stops
    a folder being made at ``path`` ("File exists", "Not a directory"); None when nothing does."""
    existing = nearest_existing(path)
    return existing if existing is not None and not existing.is_dir() else None


def not_a_folder(path: str | os.PathLike) -> str | None:
    """Why no folder can be made at ``path``, said of it (``it is a file, not a folder``, ``<parent> is a file,
    not a folder``), or None when no file stands in the way (:func:`file_in_the_way`)."""
    in_the_way = file_in_the_way(path)
    if in_the_way is None:
        return None
    return f"{'it' if in_the_way == Path(path) else in_the_way} is a file, not a folder"


def check_writable_folder(folder: str | os.PathLike) -> None:
    """Check, before work whose results go to ``folder`` starts, that files can be written there, without making
    anything: a nameless file is made and dropped in ``folder``, or in its nearest parent that exists.

    Raises:
        OSError: no file can be written there; the error names ``folder`` and the folder that refused.
    """
    folder = Path(folder)
    existing = nearest_existing(folder) or folder  # none to search: the probe in folder fails and says why
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise type(err)(err.errno, f"{err.strerror} (no file can be written in {existing})", str(folder)) from None


def temporary_path(path: str | os.PathLike) -> Path:
    """The temporary name this process writes ``path`` under: hidden, beside it, keeping its suffix
    (libraries pick a format from it)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")


def fsync_directory(directory: str | os.PathLike) -> None:
    """Make a rename inside ``directory`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def replacing(path: str | os.PathLike, mode: int = 0o644) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s new content to.

    When the block ends normally the temporary file is flushed to disk, given ``mode`` and renamed to
    ``path`` (parent folders are created); when it raises, the temporary file is deleted and ``path``
    is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_path(path)
    try:
        yield temporary
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
        fsync_directory(path.parent)
    finally:
        temporary.unlink(missing_ok=True)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Replace ``path`` with ``data`` atomically."""
    with replacing(path) as temporary:
        temporary.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Replace ``path`` with ``text`` (UTF-8) atomically."""
    return write_bytes(path, text.encode("utf-8"))


def save_image(image: Image.Image, path: str | os.PathLike, **params: object) -> Path:
    """Replace ``path`` with ``image`` atomically, in the format its suffix names (``params`` go to Pillow)."""
    with replacing(path) as temporary:
        image.save(temporary, **params)
    return Path(path)


def write_csv(path: str | os.PathLike, header: Sequence[str], rows: Iterable[Sequence[object]]) -> Path:
    """Replace ``path`` with a UTF-8 CSV of ``header`` and ``rows`` atomically."""
    with replacing(path) as temporary, temporary.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return Path(path)


@contextlib.contextmanager
def staging_directory(parent: str | os.PathLike, prefix: str) -> Iterator[Path]:
    """Yield a new, empty directory in ``parent`` (created if missing) for the caller to fill and rename.

    It is readable by others (a service may run as another user). When the block raises it is deleted;
    when it ends normally the caller has renamed it, or it is deleted too.
    """
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=parent))
    try:
        staging.chmod(0o755)
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def replace_directory(new: str | os.PathLike, target: str | os.PathLike) -> None:
    """Move the complete directory ``new`` to ``target``.

    An existing ``target`` is moved aside first and deleted after, so a crash leaves the old or the new
    directory, never a mix of both.
    """
    new, target = Path(new), Path(target)
    retired = target.with_name(f".{target.name}.old")
    shutil.rmtree(retired, ignore_errors=True)
    if target.exists():
        target.rename(retired)
    new.rename(target)
    fsync_directory(target.parent)
    shutil.rmtree(retired, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files under ``folder`` (recursively) whose writing process is gone.

    Those of a live process are kept, since it may still rename them. Returns the removed paths.
    """
    removed = []
    for path in sorted(Path(folder).rglob(".*.tmp*")):
        match = _TEMPORARY_NAME.match(path.name)
        if match and path.is_file() and int(match.group(1)) != os.getpid() and not _process_alive(int(match.group(1))):
            path.unlink(missing_ok=True)
            removed.append(path)
    if removed:
        log.info("removed %d temporary file(s) left by interrupted writes under %s", len(removed), folder)
    return removed
