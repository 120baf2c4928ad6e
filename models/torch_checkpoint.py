"""Reading a PyTorch state dict saved in the legacy (pre-1.6, non-zip) format, without PyTorch.

A legacy ``.pth`` file is a sequence of pickles followed by raw tensor data:

1. the magic number, the format version (1001) and a dict describing the
   writer (byte order, sizes of C types);
2. the state dict itself, in which every tensor is a call to
   ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)``
   and every storage a *persistent id* ``("storage", type, key, device, numel, view)``;
3. the list of storage keys in the order their bytes follow;
4. for each storage, its element count as a little-endian int64, then its bytes.

Only those few globals are resolved: any other class or function named in
the pickle is refused, so reading a weights file cannot run code.
"""

from __future__ import annotations

import collections
import pickle
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class CheckpointFormatError(ValueError):
    """The file is not a legacy PyTorch state dict this reader can decode."""


class _Storage:
    """A storage named in the pickle; its bytes are read after the state dict."""

    def __init__(self, dtype: type, numel: int):
        self.dtype = np.dtype(dtype)
        self.numel = numel
        self.array: np.ndarray | None = None


class _TensorRef:
    """A tensor waiting for its storage's bytes."""

    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def materialise(self) -> np.ndarray:
        data = self.storage.array
        itemsize = data.itemsize
        view = np.lib.stride_tricks.as_strided(
            data[self.offset :], shape=self.size, strides=[s * itemsize for s in self.stride]
        )
        return np.ascontiguousarray(view).copy()  # owns its memory, independent of the file buffer


def _rebuild_tensor(storage: _Storage, offset: int, size: tuple, stride: tuple, *_: Any) -> _TensorRef:
    return _TensorRef(storage, offset, size, stride)


class _StateDictUnpickler(pickle.Unpickler):
    def __init__(self, handle: BinaryIO, path: Path):
        super().__init__(handle)
        self.path = path
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in STORAGE_DTYPES:
            return name
        raise CheckpointFormatError(f"{self.path}: refusing to load {module}.{name} (not a plain state dict)")

    def persistent_load(self, pid: Any) -> _Storage:
        kind, storage_type, key, _device, numel, view = pid
        if kind != "storage" or view is not None:
            raise CheckpointFormatError(f"{self.path}: unsupported storage reference {pid!r}")
        if key not in self.storages:
            self.storages[key] = _Storage(STORAGE_DTYPES[storage_type], int(numel))
        return self.storages[key]


def _read_header(handle: BinaryIO, path: Path) -> None:
    try:
        magic, protocol, info = (pickle.load(handle) for _ in range(3))
    except (pickle.UnpicklingError, EOFError, ValueError) as err:
        raise CheckpointFormatError(f"{path}: not a legacy PyTorch file ({err})") from None
    if magic != LEGACY_MAGIC or protocol != LEGACY_PROTOCOL:
        raise CheckpointFormatError(f"{path}: not a legacy PyTorch file (magic {magic!r}, protocol {protocol!r})")
    if not isinstance(info, dict) or not info.get("little_endian"):
        raise CheckpointFormatError(f"{path}: written on a big-endian machine, which this reader does not handle")


def _read_storages(handle: BinaryIO, path: Path, storages: dict[str, _Storage]) -> None:
    for key in pickle.load(handle):
        storage = storages[key]
        header = handle.read(8)
        numel = int(np.frombuffer(header, "<i8")[0]) if len(header) == 8 else -1
        data = handle.read(max(numel, 0) * storage.dtype.itemsize)
        if numel != storage.numel or len(data) != numel * storage.dtype.itemsize:
            raise CheckpointFormatError(f"{path}: storage {key} is truncated or has the wrong size")
        storage.array = np.frombuffer(data, storage.dtype.newbyteorder("<"))


def read_legacy_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Tensor name -> array of a state dict saved by ``torch.save`` in the legacy format.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointFormatError: the file is a zip-format checkpoint, is truncated, or holds
            anything other than a flat dict of tensors.
    """
    path = Path(path)
    with path.open("rb") as handle:
        if handle.read(2) == b"PK":
            raise CheckpointFormatError(f"{path}: a zip-format PyTorch file; only the legacy format is read")
        handle.seek(0)
        _read_header(handle, path)
        unpickler = _StateDictUnpickler(handle, path)
        state = unpickler.load()
        if not isinstance(state, dict) or not all(isinstance(v, _TensorRef) for v in state.values()):
            raise CheckpointFormatError(f"{path}: expected a dict of tensors")
        _read_storages(handle, path, unpickler.storages)
    return {name: tensor.materialise() for name, tensor in state.items()}
