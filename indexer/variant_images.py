"""A published version holds its own copy of each variant image, so it serves the images it embedded.

``localize run`` writes a variant made again to the same path as before. A version that served the variant
from there would show the new image before a build had embedded it, and after a rollback it would show the
newer image beside the older vector. Instead the publisher puts each variant image in the version it stages
(:func:`hold`): hard-linked where the version lies on the same file system, which copies no bytes (localize
replaces a file by renaming a new one over it, which leaves the linked file as it was; a file edited in place
changes in the versions too), copied otherwise. The version's items name these files relative to the version
(:func:`held_item`); :func:`resolved` makes the path absolute when the version is loaded. Pruning a version
deletes its copies with it.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # published loads versions through this module
    from .published import IndexItem

FOLDER = "variant_images"
"""The folder of a version that holds its variant images, each named by its content hash."""

_NO_LINK = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP}
"""Why a hard link may fail where a copy works: another file system, or one without (more) links."""


def held_item(item: IndexItem, image_sha256: str) -> IndexItem:
    """``item`` as a version records it: a variant names its held image relative to the version."""
    if not item.is_variant:
        return item
    return dataclasses.replace(item, image_path=f"{FOLDER}/{image_sha256}{Path(item.image_path).suffix.lower()}")


def hold(directory: Path, item: IndexItem, image_sha256: str) -> Path:
    """Link (or copy) the image of the variant ``item`` into the version staged in ``directory``, at the path
    :func:`held_item` gives it; returns that path. The caller checks that the file is the image it embedded.

    Raises OSError when the variant's image cannot be read or the version cannot be written.
    """
    held = directory / held_item(item, image_sha256).image_path
    held.parent.mkdir(exist_ok=True)
    try:
        os.link(item.image_path, held)
    except FileExistsError:  # two variants with the same bytes
        pass
    except OSError as err:
        if err.errno not in _NO_LINK:
            raise
        shutil.copy2(item.image_path, held)  # with its modification time, which the service's Last-Modified gives
    return held


def lasting_name(path: str) -> str:
    """What names the image at ``path`` in every version: a held image's file name (its content hash, the same
    in each version that holds it), any other path whole."""
    held = Path(path)
    return held.name if held.parent.name == FOLDER else path


def resolved(item: IndexItem, version: Path) -> IndexItem:
    """``item`` as loaded from the version in ``version``: a held image's path made absolute."""
    if item.is_variant and item.image_path.startswith(f"{FOLDER}/"):
        return dataclasses.replace(item, image_path=str(version / item.image_path))
    return item
