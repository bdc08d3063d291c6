"""build/scratch.py: the scratch tree goes while the archive is written, and nothing outside it."""

from __future__ import annotations

import tarfile
from pathlib import Path

import zstandard

from venvstacks_tool.build.scratch import ScratchRemover
from venvstacks_tool.core.archive import tree_entries, write_archive

MTIME = 1_700_000_000


def _tree(root: Path) -> list[Path]:
    files = []
    for index in range(50):
        path = root / "layer" / f"pkg{index % 5}" / f"module{index}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"VALUE = {index}\n" * 100)
        files.append(path)
    (root / "layer" / "link").symlink_to("pkg0")
    return files


def test_files_go_as_the_archive_takes_them(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    files = _tree(scratch)
    outside = tmp_path / "keep.txt"
    outside.write_text("not scratch")
    seen: list[str] = []
    output = tmp_path / "layer.tar.zst"
    with ScratchRemover(scratch) as remover:

        def consumed(path: str) -> None:
            seen.append(path)
            remover.consumed(path)

        write_archive(tree_entries(scratch / "layer", "layer"), output, "tar.zst", MTIME, consumed=consumed)
        remover.consumed(str(outside))  # not below the scratch root: ignored
    assert sorted(seen) == sorted(str(path) for path in files)
    assert not scratch.exists()
    assert outside.read_text() == "not scratch"
    with (
        zstandard.ZstdDecompressor().stream_reader(output.open("rb")) as stream,
        tarfile.open(fileobj=stream, mode="r|") as tar,
    ):
        contents = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]
    assert len(contents) == 50
    assert contents["layer/pkg3/module8.py"] == b"VALUE = 8\n" * 100


def test_the_tree_goes_on_error_too(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    _tree(scratch)
    try:
        with ScratchRemover(scratch):
            raise RuntimeError("the build failed")
    except RuntimeError:
        pass
    assert not scratch.exists()
