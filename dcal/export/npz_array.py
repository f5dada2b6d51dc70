"""One array of a ``.npz`` file read in row chunks, and a ``.npz`` written from row chunks.

``numpy.savez`` stores each array as an uncompressed ``.npy`` member of a zip file.  Such a member
can be read a block of rows at a time straight from the file (:meth:`NpzArray.chunks`), or mapped
into memory for random access (:meth:`NpzArray.take`), so a feature file of a million rows is never
loaded whole.  A compressed member (``numpy.savez_compressed``) is decompressed as a stream.

:func:`write_npz` writes small arrays as they are and large ones from row chunks that
:func:`spool_rows` wrote to a temporary file as they were computed, so writing is bounded in memory
too.
"""

from __future__ import annotations

import shutil
import struct
import tempfile
import zipfile
from pathlib import Path
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO, Iterable, Iterator, Optional

import numpy as np

LOCAL_HEADER = struct.Struct("<4s5H3L2H")  # a zip member's local file header (30 bytes)


class NpzArray:
    """The array ``name`` of the ``.npz`` file ``path``, opened without reading its data."""

    def __init__(self, path, name: str):
        self.path, self.name = Path(path), name
        with zipfile.ZipFile(self.path) as archive:
            info = archive.getinfo(f"{name}.npy")
            self.stored = info.compress_type == zipfile.ZIP_STORED
            with archive.open(info) as member:
                self.shape, self.dtype = _read_npy_header(member)
            if self.stored:
                with open(self.path, "rb") as raw:
                    raw.seek(info.header_offset)
                    fields = LOCAL_HEADER.unpack(raw.read(LOCAL_HEADER.size))
                    data_start = info.header_offset + LOCAL_HEADER.size + fields[-2] + fields[-1]
                    raw.seek(data_start)
                    _read_npy_header(raw)
                    self.offset = raw.tell()

    def __len__(self) -> int:
        return int(self.shape[0])

    def chunks(self, rows: int) -> Iterable[np.ndarray]:
        """The array ``rows`` rows at a time, in order (each a fresh array)."""
        with zipfile.ZipFile(self.path) as archive, archive.open(f"{self.name}.npy") as member:
            if self.stored:
                source = open(self.path, "rb")
                source.seek(self.offset)
            else:
                source = member
                _read_npy_header(member)
            try:
                for start in range(0, len(self), rows):
                    count = min(rows, len(self) - start)
                    data = np.empty((count, *self.shape[1:]), self.dtype)
                    _read_into(source, data)
                    yield data
            finally:
                if source is not member:
                    source.close()

    def take(self, indices) -> np.ndarray:
        """The rows ``indices`` (memory-mapped when the member is stored uncompressed)."""
        indices = np.asarray(indices, dtype=np.int64)
        if self.stored:
            return np.array(np.memmap(self.path, self.dtype, "r", self.offset, tuple(self.shape))[indices])
        with np.load(self.path) as data:
            return data[self.name][indices]


@dataclass
class SpooledRows:
    """Rows of an array written to a temporary file as they came, to be copied into a ``.npz``."""

    file: BinaryIO
    rows: int
    row_shape: tuple
    dtype: np.dtype


@contextmanager
def spool_rows(chunks: Iterable[np.ndarray], row_shape: tuple = (), dtype=np.float32, dir=None) -> Iterator[SpooledRows]:
    """Write ``chunks`` (arrays of rows of ``row_shape``, taken from the first chunk when there is
    one) to a temporary file in ``dir``; the file is removed when the context ends."""
    dtype = np.dtype(dtype)
    with tempfile.TemporaryFile(dir=dir) as spool:
        rows = 0
        for chunk in chunks:
            chunk = np.ascontiguousarray(chunk, dtype=dtype)
            row_shape = tuple(chunk.shape[1:])
            spool.write(chunk.tobytes())
            rows += chunk.shape[0]
        yield SpooledRows(spool, rows, tuple(row_shape), dtype)


def write_npz(path, arrays: dict, spooled: Optional[dict] = None) -> None:
    """Write ``arrays`` and the :class:`SpooledRows` of ``spooled`` (name to rows) as one
    uncompressed ``.npz`` that ``numpy.load`` reads, atomically (temporary file, then rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)
        for name, rows in (spooled or {}).items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                header = {"descr": np.lib.format.dtype_to_descr(rows.dtype), "fortran_order": False,
                          "shape": (rows.rows, *rows.row_shape)}
                np.lib.format.write_array_header_2_0(member, header)
                rows.file.seek(0)
                shutil.copyfileobj(rows.file, member, 1 << 22)
    tmp.replace(path)


def _read_npy_header(stream):
    version = np.lib.format.read_magic(stream)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran_order, dtype = read(stream)
    if fortran_order:
        raise ValueError("Fortran-ordered arrays are not read in chunks")
    return shape, dtype


def _read_into(stream, array: np.ndarray) -> None:
    view, filled = memoryview(array.reshape(-1)).cast("B"), 0
    while filled < len(view):
        count = stream.readinto(view[filled:])
        if not count:
            raise EOFError(f"expected {len(view)} bytes, the file ends after {filled}")
        filled += count
