"""`deploy`: unpack layer archives side by side into a directory and run their post-install.

Archives are given in dependency order (the runtime first, then frameworks, then applications),
each with the metadata JSON the build wrote for it. In order:

1. every archive's metadata is read (`verify`), and every archive is checked against it (size,
   sha256, the layer its first member names) before any is unpacked; the deploy lock of DEST is
   taken, and what a killed deploy left is put right (`transaction`);
2. a layer whose checked archive sha256 is the one recorded for it in DEST (and whose directory
   exists) is skipped, unless `--force`: redeploying an unchanged stack, or a second application
   on the same framework, does not unpack the shared layers again;
3. each other archive is unpacked into a fresh `.venvstacks-tmp-*` directory inside DEST, a
   sibling of the deployed layers, so the layer's relative paths to its runtime and lower layers
   already resolve there (`extract_layer`: the lean reader, else tarfile/zipfile, every member
   checked by `extraction.Extraction`); the symlinks of the other layers in DEST must still
   resolve inside DEST with its new symlinks (`Extraction.check_deployed_links`, given those
   whose resolution passes through the layer: `DeployState.links_reaching`); its
   `postinstall.py` then runs with the deployed runtime's interpreter; only then does it replace
   `DEST/<layer>` (`transaction.swap_in`: one exchange where the system has it), and its sha256
   and symlinks are recorded. On any failure the staging directory is removed and the previous
   layer is left as it was; a failure of DEST's file system (full, read-only, refused) is named
   by its cause (`dest_errors`), never blamed on the archive.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import tempfile
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import BinaryIO

from venvstacks_tool.core import postinstall_template
from venvstacks_tool.core.archive import ARCHIVE_HEAD_SIZE, detect_archive_format
from venvstacks_tool.core.cli import add_repeatable, subcommand_parser
from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.process import output_tail, run_captured
from venvstacks_tool.core.protocol import POSTINSTALL_NAME, read_layer_config
from venvstacks_tool.deploy import dest_errors, fallback, lean_tar, transaction, verify
from venvstacks_tool.deploy.extraction import (
    OLD_PREFIX,
    TMP_PREFIX,
    ArchiveDamage,
    ExtendedHeaderTooLarge,
    Extraction,
    NotLean,
)

__all__ = ["OLD_PREFIX", "TMP_PREFIX", "deploy", "extract_layer", "main"]

# The readers, as names of this module so a test can force one (and the bench can time them).
_extract_lean = lean_tar.extract_lean
_extract_with_tarfile = fallback.extract_tar


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of `deploy` (reads `@paramfile` arguments)."""
    parser = subcommand_parser("deploy", "Unpack layer archives into a directory and run each layer's postinstall.py.")
    parser.add_argument(
        "--archive",
        action="append",
        required=True,
        dest="archives",
        type=Path,
        metavar="PATH",
        help="a layer archive (.tar.zst, .tar.xz or .zip); repeatable, in dependency order (runtime first)",
    )
    add_repeatable(
        parser,
        "--metadata",
        "metadata",
        "PATH",
        "the layer metadata JSON of each --archive, in the same order; without any, NAME.json beside each"
        " NAME.<format> (where the build writes it)",
        type=Path,
    )
    parser.add_argument("--dest", required=True, type=Path, help="the directory the layers are deployed into")
    parser.add_argument(
        "--force", action="store_true", help="unpack every layer, also those already deployed from the same archive"
    )
    parser.add_argument(
        "--lock-timeout",
        type=float,
        default=transaction.DEFAULT_LOCK_TIMEOUT,
        metavar="SECONDS",
        help="how long to wait for another deploy into the same directory (default: %(default)g)",
    )
    return parser


def extract_layer(
    archive: Path,
    dest: Path,
    target: Path,
    *,
    fileobj: BinaryIO | None = None,
    expected_layer: str = "",
    metadata: str = "",
) -> Extraction:
    """Unpack the layer in `archive` into the empty directory `target` (a sibling in `dest`).

    The archive's top-level directory is stripped; its name is the layer name (it must be
    `expected_layer` when given; `metadata` names where that came from). Returns the finished
    `Extraction` (its `layer`, its `links`). The archive is read from `fileobj` (at its start)
    when given. Raises VenvstacksError naming the archive: for an unsafe member (naming it), and
    "corrupt or truncated" for damaged data, whichever reader saw it; OSError when a write below
    `target` fails. A .tar.zst or .tar.xz is read by the lean reader, and by tarfile only when
    it uses what the lean reader does not handle; a .zip by zipfile.
    """
    origin = archive.name
    own = fileobj is None
    try:
        if fileobj is None:
            fileobj = open(archive, "rb")  # noqa: SIM115 - closed below
        archive_format = detect_archive_format(archive, fileobj.read(ARCHIVE_HEAD_SIZE))
        fileobj.seek(0)
        extraction = Extraction(origin, dest, target, expected_layer, metadata)
        if archive_format == "zip":
            fallback.extract_zip(fileobj, extraction)
        elif archive_format in ("tar.zst", "tar.xz"):
            try:
                _extract_lean(fileobj, archive_format, extraction)
            except NotLean:
                extraction.clear()
                fileobj.seek(0)
                extraction = Extraction(origin, dest, target, expected_layer, metadata)
                _extract_with_tarfile(fileobj, archive_format, extraction)
        else:
            raise VenvstacksError(f"archive {origin!r}: not a .tar.zst, .tar.xz or .zip layer archive")
        extraction.finish()
        return extraction
    except VenvstacksError:
        raise
    except ExtendedHeaderTooLarge as error:
        raise VenvstacksError(f"archive {origin!r}: {error}") from error
    except ArchiveDamage as error:
        raise VenvstacksError(f"archive {origin!r}: corrupt or truncated: {error}") from error
    except OSError as error:
        if fileobj is None:
            raise VenvstacksError(f"archive {origin!r} cannot be read: {error.strerror}") from error
        # No reader raises OSError for bad archive data (tarfile, zipfile, lzma and zstandard have
        # their own errors): this is a write into DEST failing, which the caller names by its cause.
        raise
    except Exception as error:
        # tarfile/zipfile errors, EOFError, lzma.LZMAError, zstandard.ZstdError: bad archive data.
        raise VenvstacksError(f"archive {origin!r}: corrupt or truncated: {error}") from error
    finally:
        if own and fileobj is not None:
            fileobj.close()


def _run_postinstall(layer: str, staged: Path, final: Path, origin: str) -> None:
    """Run the staged layer's postinstall.py with the interpreter of its runtime."""
    config = read_layer_config(staged, origin)
    is_runtime = not postinstall_template.is_layered(config)
    script = staged / POSTINSTALL_NAME
    if not script.is_file():
        if is_runtime:
            return  # a runtime layer needs no post-install step
        raise VenvstacksError(f"archive {origin!r}: layer {layer!r} has no {POSTINSTALL_NAME}")
    if is_runtime:
        python = staged.joinpath(*config["python"].split("/"))
    else:
        python = Path(os.path.normpath(final.joinpath(*config["base_python"].split("/"))))
    if not os.path.exists(python):
        runtime = config.get("runtime_name") or python.parent.parent.name
        raise VenvstacksError(
            f"archive {origin!r}: layer {layer!r} needs the runtime layer {runtime!r} at {python.parent.parent};"
            " deploy the runtime's archive first (archives go in dependency order)"
        )
    result = run_captured([str(python), "-I", str(script)], cwd=staged)
    if result.returncode != 0:
        output = result.stdout + result.stderr
        error = dest_errors.error_in_output(output)
        if error is not None:
            raise error  # the child failed on DEST's file system: named by its cause, as ours are
        raise VenvstacksError(
            f"archive {origin!r}: {POSTINSTALL_NAME} of layer {layer!r} failed (exit {result.returncode}):"
            f"{_child_failure(output)}"
        )


def _child_failure(output: str) -> str:
    """A failed child's output for a message: a traceback's last line only (on the first line),
    else the output's tail on the lines below."""
    if "Traceback (most recent call last):" in output:
        lines = [line for line in output.strip().splitlines() if line.strip()]
        return f" {lines[-1].strip()}"
    return f"\n{output_tail(output)}"


def _swap_in(staged: Path, final: Path) -> None:
    """Move `staged` to `final`, the old layer aside first (`transaction.swap_in`)."""
    transaction.swap_in(staged, final)


def _deploy_layer(
    expected: verify.Expected,
    fileobj: BinaryIO,
    dest: Path,
    state: transaction.DeployState,
    replaced_later: Collection[str],
) -> str:
    """Deploy one checked archive into `dest`; return the layer name.

    `replaced_later` names the layers this deploy replaces after this one: their links on disk
    are not checked against the new layer (their new archives' links are, when they come).
    """
    archive, layer = expected.archive, expected.layer
    final = dest / layer
    staged: Path | None = None
    try:
        staged = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=dest))
        os.chmod(staged, 0o755)  # mkdtemp makes it 0700; it becomes the layer directory
        extraction = extract_layer(
            archive, dest, staged, fileobj=fileobj, expected_layer=layer, metadata=str(expected.metadata)
        )
        extraction.check_deployed_links(state.links_reaching(layer, replaced_later))
        transaction.at_step("post-install")
        _run_postinstall(layer, staged, final, archive.name)
        state.forget(layer)
        _swap_in(staged, final)
    except OSError as error:
        if staged is not None:
            shutil.rmtree(staged, ignore_errors=True)  # first: what is free is measured after
        full = error.errno in dest_errors.SPACE
        what = dest_errors.cause(
            error,
            dest,
            needed=dest_errors.layer_size(fileobj, archive) if full else None,
            shown_path=dest_errors.shown(error.filename, staged or final, final),
        )
        raise VenvstacksError(
            f"cannot deploy layer {layer!r} into {str(dest)!r}: {what}; {str(final)!r} is left as it was"
        ) from None
    except BaseException:
        if staged is not None:
            shutil.rmtree(staged, ignore_errors=True)
        raise
    try:
        state.record(layer, expected.sha256, archive.name, extraction.symlinks())
    except OSError as error:
        raise VenvstacksError(
            f"layer {layer!r} is deployed to {str(final)!r} but cannot be recorded in"
            f" {transaction.STATE_NAME!r}: {dest_errors.cause(error, dest, needed=0)}; the next deploy unpacks it"
            " again"
        ) from None
    return layer


def deploy(
    archives: Sequence[Path],
    dest: Path,
    metadata: Sequence[Path] | None = None,
    *,
    force: bool = False,
    lock_timeout: float = transaction.DEFAULT_LOCK_TIMEOUT,
) -> list[str]:
    """Deploy `archives` (in dependency order) into `dest`; return the layer names.

    `metadata` gives each archive's metadata JSON (same order); without it, NAME.json beside
    each NAME.<format>. A layer already deployed from an archive with the same sha256 is
    skipped unless `force`. See the module doc for the order of the checks.
    """
    dest = Path(os.path.abspath(dest))
    paired = zip(archives, verify.pair_metadata(archives, metadata), strict=True)
    expected = [verify.read_expected(archive, meta) for archive, meta in paired]
    transaction.prepare_dest(dest)
    checked = verify.open_all_checked(expected)
    try:
        with transaction.dest_lock(dest, lock_timeout):
            _deploy_checked(expected, checked, dest, force)
    except OSError as error:
        # What no step above names more precisely (recovery, the lock file): still one line.
        raise VenvstacksError(f"cannot deploy into {str(dest)!r}: {dest_errors.cause(error, dest)}") from None
    finally:
        for item in checked:
            item.fileobj.close()
    return [e.layer for e in expected]


def _deploy_checked(expected: list[verify.Expected], checked: list[verify.Checked], dest: Path, force: bool) -> None:
    """Deploy the checked archives in order, under DEST's lock, skipping those already deployed."""
    transaction.recover(dest)
    state = transaction.DeployState(dest)
    # Skipped only on the archive's own sha256 (just computed) and the layer its first member names.
    todo = {
        i
        for i, (e, c) in enumerate(zip(expected, checked, strict=True))
        if force or c.layer != e.layer or not state.is_deployed(e.layer, e.sha256)
    }
    # The layers still to replace after the current one, with how many times: updated in place,
    # so a deploy of N layers does not build N sets of up to N names.
    later = collections.Counter(expected[j].layer for j in todo)
    for i, item in enumerate(expected):
        if i not in todo:
            print(f"layer {item.layer!r} is already deployed (archive sha256 {item.sha256}); skipped", flush=True)
            continue
        later[item.layer] -= 1
        if not later[item.layer]:
            del later[item.layer]
        layer = _deploy_layer(item, checked[i].fileobj, dest, state, later.keys())
        print(f"deployed layer {layer!r} to {dest / layer}", flush=True)


def main(argv: list[str]) -> int:
    """Run `deploy` with `argv`; errors are raised as VenvstacksError."""
    args = build_parser().parse_args(argv)
    deploy(args.archives, args.dest, args.metadata, force=args.force, lock_timeout=args.lock_timeout)
    return 0
