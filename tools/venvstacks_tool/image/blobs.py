"""Compressed OCI layer blobs, written in one pass with both of their digests.

An OCI image names a layer twice: the manifest by the sha256 of the compressed blob (what
registries store and share), the config by the sha256 of the plain tar (its `diff_id`). Both must
be the same wherever the layer is built, so the compressors run with fixed settings: gzip with a
zero header mtime, no file name and level 6; zstd at a fixed level in its multi-threaded mode
(its output is the same for any number of workers, see core/archive.py), with a checksum.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from venvstacks_tool.core.fsutil import atomic_output

# Layer compressions and their OCI media types (keep in sync: image/constants.bzl IMAGE_COMPRESSIONS).
MEDIA_TYPES = {
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}
# gzip level 6 is zlib's default: what `docker build` and most image tools write.
GZIP_LEVEL = 6
# zstd level 3 is zstd's default and what podman/buildah and containerd write for zstd layers.
ZSTD_LEVEL = 3
_ZSTD_THREADS = 2


@dataclass(frozen=True)
class BlobDigests:
    """What an image needs to know of a written layer blob."""

    media_type: str
    digest: str  # sha256:<hex> of the compressed bytes
    size: int  # bytes of the compressed blob
    diff_id: str  # sha256:<hex> of the plain tar


class _HashingWriter:
    """A write-only stream that hashes and counts what passes through it to `sink`."""

    def __init__(self, sink: Callable[[bytes], object]) -> None:
        self._sink = sink
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        self._sink(data)
        return len(data)

    def flush(self) -> None:
        pass


def _compressor(compression: str, out: _HashingWriter) -> tuple[Callable[[bytes], object], Callable[[], None]]:
    """The write function of a stream compressing into `out`, and the function that ends it."""
    if compression == "gzip":
        import gzip

        # filename="" and mtime=0: no name and no time in the gzip header.
        gz = gzip.GzipFile(filename="", mode="wb", compresslevel=GZIP_LEVEL, fileobj=out, mtime=0)
        return gz.write, gz.close
    import zstandard

    compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=_ZSTD_THREADS, write_checksum=True)
    writer = compressor.stream_writer(out, closefd=False)  # type: ignore[arg-type]  # write() is all it uses
    return writer.write, writer.close


def write_layer_blob(output: Path, compression: str, write_tar: Callable[[IO[bytes]], None]) -> BlobDigests:
    """Compress the plain tar that `write_tar(stream)` writes into the blob `output`; return its digests.

    The blob is written atomically: on an error nothing appears at `output`.
    """
    if compression not in MEDIA_TYPES:
        raise ValueError(f"unknown layer compression {compression!r}")
    with atomic_output(output) as out:
        compressed = _HashingWriter(out.write)
        write, finish = _compressor(compression, compressed)
        plain = _HashingWriter(write)
        write_tar(plain)  # type: ignore[arg-type]
        finish()
    return BlobDigests(
        media_type=MEDIA_TYPES[compression],
        digest="sha256:" + compressed.sha256.hexdigest(),
        size=compressed.size,
        diff_id="sha256:" + plain.sha256.hexdigest(),
    )
