"""Removing a layer's scratch tree while its archive is still being written.

A framework layer's scratch tree can hold tens of thousands of files (torch: 20,000 files,
865 MB). Removing it after the archive is written took up to 20 s of the action on a busy disk
(docs/performance.md, "A torch-scale stack"), time in which nothing else happened. The archive
writer reports each file as soon as the archive holds all of its bytes
(`write_archive(consumed=...)`), and `ScratchRemover` unlinks those files in a thread of its own
while the writer reads the next ones and zstd compresses on its own threads; what is left at the
end (directories, symlinks, anything not archived) goes with one `rmtree`.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import threading
from pathlib import Path
from types import TracebackType

_DONE = ""


class ScratchRemover:
    """Context manager that removes the tree at `root`: handed-over files at once, the rest on exit.

    Use `consumed` as `write_archive`'s callback. Only paths below `root` are removed; a failure
    to unlink one file is left to the final `rmtree`, which ignores errors (it is scratch space).
    """

    def __init__(self, root: Path) -> None:
        self._root = os.path.join(os.path.abspath(root), "")
        self._paths: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._unlink_handed_over, name="scratch-remover", daemon=True)

    def __enter__(self) -> ScratchRemover:
        self._thread.start()
        return self

    def consumed(self, path: str) -> None:
        """Hand over a file of the tree that is no longer needed."""
        if os.path.abspath(path).startswith(self._root):
            self._paths.put(path)

    def _unlink_handed_over(self) -> None:
        while (path := self._paths.get()) != _DONE:
            with contextlib.suppress(OSError):  # the final rmtree tries again
                os.unlink(path)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._paths.put(_DONE)
        self._thread.join()
        shutil.rmtree(self._root, ignore_errors=True)
