"""A small REAPI worker for BuildGrid: takes leases over the Bots API and runs them.

No registry ships a REAPI worker (BuildGrid's own, buildbox, is not packaged), so the tests bring
this one. It runs in BuildGrid's virtual environment (tests/support/reapi_service.py starts it
there) and uses only the gRPC stubs that the `buildgrid` package ships:

* Bots API (`google.devtools.remoteworkers.v1test2`): one bot session, capacity 1. A lease's
  payload is the `Action` (or its digest); the worker reports the lease ACTIVE, runs it (and
  reports the session every 5 s meanwhile, so that BuildGrid can tell a dead worker from a busy
  one), and reports it COMPLETED with the `ActionResult` packed in `lease.result`.
* REAPI CAS (`GetTree`, `FindMissingBlobs`, `BatchReadBlobs`, `BatchUpdateBlobs`) and ByteStream
  (`Read`, `Write`) for blobs too large for a batch.

Each action runs in a fresh directory: the input root is staged from CAS (a file is fetched once
per worker into its blob cache and hard-linked from there, read-only), the parent directories of
the outputs are created, and the command runs in that directory with exactly the environment
variables the action carries (nothing inherited), in a network namespace of its own (`unshare
--net` as root, `unshare -rn` otherwise), so an action that reaches for the network fails. The
outputs the command names (files, directories as `Tree`s, symlinks) are uploaded, with stdout and
stderr, and the exit code is reported. The directory is removed afterwards.

    python reapi_worker.py --server 127.0.0.1:PORT --instance main --bot-id w1 --workdir DIR [--hold-file F]

It stops on SIGTERM/SIGINT (between two lease updates, or by ending the running action).

`--hold-file F` is for failure tests: while F exists and one of its lines is a substring of one
of the action's output paths, the worker logs `holding lease ...` once the inputs are staged and
waits before it runs the command, so that a test can kill the worker (or stop the service)
while a chosen layer action is in flight.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import grpc
from buildgrid._protos.build.bazel.remote.execution.v2 import remote_execution_pb2 as re_pb2
from buildgrid._protos.build.bazel.remote.execution.v2 import remote_execution_pb2_grpc as re_grpc
from buildgrid._protos.google.bytestream import bytestream_pb2, bytestream_pb2_grpc
from buildgrid._protos.google.devtools.remoteworkers.v1test2 import bots_pb2, bots_pb2_grpc, worker_pb2
from buildgrid._protos.google.rpc import code_pb2

# Blobs up to this size go through the batch calls; larger ones through ByteStream.
_BATCH_BLOB_LIMIT = 1 << 20
# The total size of one batch request (BuildGrid's default limit is 4 MiB per message).
_BATCH_TOTAL_LIMIT = 3 << 20
_BYTESTREAM_CHUNK = 1 << 20
# How long one UpdateBotSession may wait for work (the server long-polls).
_POLL_SECONDS = 20.0
# How often a worker reports its session while it runs a lease (see `Heartbeat`).
_HEARTBEAT_SECONDS = 5.0
_GRPC_OPTIONS = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]

_stopping = threading.Event()
_running: subprocess.Popen[bytes] | None = None
_hold_file: Path | None = None


def log(message: str) -> None:
    """One line on stderr, with the time (the service collects it in the worker's log file)."""
    print(f"{time.strftime('%H:%M:%S')} reapi_worker: {message}", file=sys.stderr, flush=True)


class Cas:
    """The CAS and ByteStream clients of one instance."""

    def __init__(self, channel: grpc.Channel, instance: str) -> None:
        self.instance = instance
        self.cas = re_grpc.ContentAddressableStorageStub(channel)
        self.bytestream = bytestream_pb2_grpc.ByteStreamStub(channel)

    def read_blobs(self, digests: Iterable[re_pb2.Digest]) -> Iterator[tuple[re_pb2.Digest, bytes]]:
        """(digest, bytes) of every digest: small ones in batches, large ones streamed."""
        batch: list[re_pb2.Digest] = []
        batch_size = 0
        for digest in digests:
            if digest.size_bytes == 0:
                yield digest, b""
            elif digest.size_bytes > _BATCH_BLOB_LIMIT:
                yield digest, self._read_stream(digest)
            else:
                if batch and batch_size + digest.size_bytes > _BATCH_TOTAL_LIMIT:
                    yield from self._read_batch(batch)
                    batch, batch_size = [], 0
                batch.append(digest)
                batch_size += digest.size_bytes
        if batch:
            yield from self._read_batch(batch)

    def _read_batch(self, digests: list[re_pb2.Digest]) -> Iterator[tuple[re_pb2.Digest, bytes]]:
        request = re_pb2.BatchReadBlobsRequest(instance_name=self.instance, digests=digests)
        for response in self.cas.BatchReadBlobs(request).responses:
            if response.status.code != code_pb2.OK:
                raise RuntimeError(f"BatchReadBlobs {response.digest.hash}: {response.status.message}")
            yield response.digest, response.data

    def _read_stream(self, digest: re_pb2.Digest) -> bytes:
        name = f"{self.instance}/blobs/{digest.hash}/{digest.size_bytes}"
        return b"".join(chunk.data for chunk in self.bytestream.Read(bytestream_pb2.ReadRequest(resource_name=name)))

    def read_message(self, digest: re_pb2.Digest, message: Any) -> Any:
        """Parses the blob `digest` into `message` and returns it."""
        for _, data in self.read_blobs([digest]):
            message.ParseFromString(data)
        return message

    def upload(self, blobs: dict[str, bytes]) -> None:
        """Uploads the blobs (by sha256) that the CAS does not have yet."""
        if not blobs:
            return
        digests = [re_pb2.Digest(hash=key, size_bytes=len(data)) for key, data in blobs.items()]
        missing = self.cas.FindMissingBlobs(
            re_pb2.FindMissingBlobsRequest(instance_name=self.instance, blob_digests=digests)
        ).missing_blob_digests
        batch: list[re_pb2.BatchUpdateBlobsRequest.Request] = []
        batch_size = 0
        for digest in missing:
            data = blobs[digest.hash]
            if len(data) > _BATCH_BLOB_LIMIT:
                self._write_stream(digest, data)
                continue
            if batch and batch_size + len(data) > _BATCH_TOTAL_LIMIT:
                self._write_batch(batch)
                batch, batch_size = [], 0
            batch.append(re_pb2.BatchUpdateBlobsRequest.Request(digest=digest, data=data))
            batch_size += len(data)
        if batch:
            self._write_batch(batch)

    def _write_batch(self, requests: list[re_pb2.BatchUpdateBlobsRequest.Request]) -> None:
        request = re_pb2.BatchUpdateBlobsRequest(instance_name=self.instance, requests=requests)
        for response in self.cas.BatchUpdateBlobs(request).responses:
            if response.status.code != code_pb2.OK:
                raise RuntimeError(f"BatchUpdateBlobs {response.digest.hash}: {response.status.message}")

    def _write_stream(self, digest: re_pb2.Digest, data: bytes) -> None:
        name = f"{self.instance}/uploads/{uuid.uuid4()}/blobs/{digest.hash}/{digest.size_bytes}"

        def requests() -> Iterator[bytestream_pb2.WriteRequest]:
            for offset in range(0, len(data), _BYTESTREAM_CHUNK):
                chunk = data[offset : offset + _BYTESTREAM_CHUNK]
                last = offset + len(chunk) >= len(data)
                yield bytestream_pb2.WriteRequest(
                    resource_name=name if offset == 0 else "", write_offset=offset, data=chunk, finish_write=last
                )

        response = self.bytestream.Write(requests())
        if response.committed_size not in (len(data), -1):
            raise RuntimeError(f"ByteStream.Write {digest.hash}: committed {response.committed_size} of {len(data)}")


def digest_of(data: bytes) -> re_pb2.Digest:
    """The REAPI (sha256) digest of `data`."""
    return re_pb2.Digest(hash=hashlib.sha256(data).hexdigest(), size_bytes=len(data))


class Stager:
    """Stages input roots from CAS through a per-worker blob cache (hard links, read-only)."""

    def __init__(self, cas: Cas, cache: Path) -> None:
        self.cas = cas
        self.cache = cache
        cache.mkdir(parents=True, exist_ok=True)
        self.fetched = 0
        self.linked = 0

    def _cached(self, digest: re_pb2.Digest, executable: bool) -> Path:
        return self.cache / f"{digest.hash}_{digest.size_bytes}{'_x' if executable else ''}"

    def stage(self, root_digest: re_pb2.Digest, root: Path) -> None:
        """Writes the tree `root_digest` into the (existing, empty) directory `root`."""
        directories: dict[str, re_pb2.Directory] = {}
        request = re_pb2.GetTreeRequest(instance_name=self.cas.instance, root_digest=root_digest)
        for response in self.cas.cas.GetTree(request):
            for directory in response.directories:
                directories[digest_of(directory.SerializeToString()).hash] = directory
        if root_digest.size_bytes == 0:
            directories.setdefault(root_digest.hash, re_pb2.Directory())
        files: list[tuple[Path, re_pb2.Digest, bool]] = []
        pending = [(root, root_digest.hash)]
        while pending:
            path, key = pending.pop()
            directory = directories[key]
            for node in directory.directories:
                (path / node.name).mkdir()
                pending.append((path / node.name, node.digest.hash))
            for file_node in directory.files:
                files.append((path / file_node.name, file_node.digest, file_node.is_executable))
            for link in directory.symlinks:
                os.symlink(link.target, path / link.name)
        wanted: dict[str, re_pb2.Digest] = {}
        for _, digest, executable in files:
            if not self._cached(digest, executable).exists():
                wanted[digest.hash] = digest
        if wanted:
            for digest, data in self.cas.read_blobs(wanted.values()):
                if digest_of(data).hash != digest.hash:
                    raise RuntimeError(f"CAS returned wrong bytes for {digest.hash}")
                for executable in (False, True):
                    self._store(digest, executable, data)
                self.fetched += 1
        for path, digest, executable in files:
            os.link(self._cached(digest, executable), path)
            self.linked += 1

    def _store(self, digest: re_pb2.Digest, executable: bool, data: bytes) -> None:
        target = self._cached(digest, executable)
        if target.exists():
            return
        temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}")
        temporary.write_bytes(data)
        temporary.chmod(0o555 if executable else 0o444)
        os.replace(temporary, target)


def _file_node(path: Path, name: str, blobs: dict[str, bytes]) -> re_pb2.FileNode:
    data = path.read_bytes()
    digest = digest_of(data)
    blobs[digest.hash] = data
    return re_pb2.FileNode(name=name, digest=digest, is_executable=bool(path.stat().st_mode & stat.S_IXUSR))


def _directory_message(path: Path, blobs: dict[str, bytes], children: list[re_pb2.Directory]) -> re_pb2.Directory:
    """The `Directory` of `path` (sorted), with every subdirectory appended to `children`."""
    directory = re_pb2.Directory()
    for entry in sorted(os.scandir(path), key=lambda item: item.name):
        full = Path(entry.path)
        if entry.is_symlink():
            directory.symlinks.add(name=entry.name, target=os.readlink(full))
        elif entry.is_dir():
            child = _directory_message(full, blobs, children)
            children.append(child)
            data = child.SerializeToString()
            blobs[digest_of(data).hash] = data
            directory.directories.add(name=entry.name, digest=digest_of(data))
        elif entry.is_file():
            directory.files.append(_file_node(full, entry.name, blobs))
    return directory


def collect_outputs(command: re_pb2.Command, root: Path, result: re_pb2.ActionResult, blobs: dict[str, bytes]) -> None:
    """Adds the outputs that exist to `result` and their blobs to `blobs`."""
    base = root / command.working_directory
    paths = list(command.output_paths) or [*command.output_files, *command.output_directories]
    for relative in paths:
        path = base / relative
        if path.is_symlink():
            result.output_symlinks.add(path=relative, target=os.readlink(path))
        elif path.is_dir():
            children: list[re_pb2.Directory] = []
            tree = re_pb2.Tree(root=_directory_message(path, blobs, children), children=children)
            data = tree.SerializeToString()
            blobs[digest_of(data).hash] = data
            result.output_directories.add(path=relative, tree_digest=digest_of(data))
        elif path.is_file():
            node = _file_node(path, relative, blobs)
            result.output_files.add(path=relative, digest=node.digest, is_executable=node.is_executable)


def _network_isolation() -> list[str]:
    """The command prefix that gives the action a network namespace of its own (loopback down)."""
    return ["unshare", "--net"] if os.geteuid() == 0 else ["unshare", "--map-root-user", "--net"]


def execute(stager: Stager, action: re_pb2.Action, workdir: Path, bot_id: str) -> re_pb2.ActionResult:
    """Stages, runs and collects one action; returns its `ActionResult` (outputs uploaded)."""
    global _running
    cas = stager.cas
    result = re_pb2.ActionResult()
    metadata = result.execution_metadata
    metadata.worker = bot_id
    metadata.worker_start_timestamp.GetCurrentTime()
    command = cas.read_message(action.command_digest, re_pb2.Command())
    root = workdir / f"action-{uuid.uuid4().hex[:12]}"
    root.mkdir(parents=True)
    try:
        metadata.input_fetch_start_timestamp.GetCurrentTime()
        stager.stage(action.input_root_digest, root)
        metadata.input_fetch_completed_timestamp.GetCurrentTime()
        base = root / command.working_directory
        base.mkdir(parents=True, exist_ok=True)
        for relative in list(command.output_paths) or [*command.output_files, *command.output_directories]:
            (base / relative).parent.mkdir(parents=True, exist_ok=True)
        for relative in command.output_directories:
            (base / relative).mkdir(parents=True, exist_ok=True)
        _hold(list(command.output_paths) or [*command.output_files, *command.output_directories], bot_id)
        env = {variable.name: variable.value for variable in command.environment_variables}
        timeout = action.timeout.seconds or None
        metadata.execution_start_timestamp.GetCurrentTime()
        argv = [*_network_isolation(), "--", *command.arguments]
        with open(root / ".stdout", "wb") as stdout, open(root / ".stderr", "wb") as stderr:
            process = subprocess.Popen(argv, cwd=base, env=env, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr)
            _running = process
            try:
                result.exit_code = process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                result.exit_code = -1
                stderr.write(f"\nreapi_worker: killed after the action's timeout of {timeout}s\n".encode())
            finally:
                _running = None
        metadata.execution_completed_timestamp.GetCurrentTime()
        metadata.output_upload_start_timestamp.GetCurrentTime()
        blobs: dict[str, bytes] = {}
        collect_outputs(command, root, result, blobs)
        for name, field in ((".stdout", "stdout_digest"), (".stderr", "stderr_digest")):
            data = (root / name).read_bytes()
            getattr(result, field).CopyFrom(digest_of(data))
            blobs[digest_of(data).hash] = data
        cas.upload(blobs)
        metadata.output_upload_completed_timestamp.GetCurrentTime()
    finally:
        _make_removable(root)
        shutil.rmtree(root, ignore_errors=True)
    metadata.worker_completed_timestamp.GetCurrentTime()
    return result


def _hold(outputs: list[str], bot_id: str) -> None:
    """Waits while the hold file exists and names (a substring of) one of `outputs`."""
    if _hold_file is None:
        return
    logged = False
    while not _stopping.is_set():
        try:
            patterns = [line.strip() for line in _hold_file.read_text().splitlines() if line.strip()]
        except OSError:
            return
        held = [output for output in outputs if any(pattern in output for pattern in patterns)]
        if not held:
            return
        if not logged:
            log(f"holding lease of {bot_id} (pid {os.getpid()}) for {held[0]} while {_hold_file} exists")
            logged = True
        time.sleep(0.1)


def _make_removable(root: Path) -> None:
    for directory, _, _ in os.walk(root):
        os.chmod(directory, 0o755)


def run_lease(stager: Stager, lease: bots_pb2.Lease, workdir: Path, bot_id: str) -> None:
    """Runs `lease` in place: sets its state, status and result."""
    lease.state = bots_pb2.LeaseState.COMPLETED
    try:
        action = re_pb2.Action()
        if lease.payload.Is(re_pb2.Action.DESCRIPTOR):
            lease.payload.Unpack(action)
        else:
            digest = re_pb2.Digest()
            lease.payload.Unpack(digest)
            stager.cas.read_message(digest, action)
        log(f"lease {lease.id}: started")
        started = time.monotonic()
        result = execute(stager, action, workdir, bot_id)
        log(
            f"lease {lease.id}: exit {result.exit_code} in {time.monotonic() - started:.2f}s"
            f" ({stager.fetched} blobs fetched, {stager.linked} files linked so far)"
        )
        lease.result.Pack(result)
        lease.status.code = code_pb2.OK
    except Exception as error:  # reported to the client as the action's failure
        log(f"lease {lease.id} failed: {error!r}")
        lease.status.code = code_pb2.INTERNAL
        lease.status.message = f"reapi_worker: {error!r}"[:2000]


class Heartbeat:
    """While a lease runs, reports the session (lease ACTIVE) every `_HEARTBEAT_SECONDS`.

    BuildGrid closes a session it has not heard of for `bot-session-keepalive-timeout` and
    requeues its leases, so a worker that dies mid-action loses its lease to another worker
    within that time; a live worker with a long action must keep saying so.
    """

    def __init__(self, bots: bots_pb2_grpc.BotsStub, session: bots_pb2.BotSession) -> None:
        self.bots = bots
        self.session = bots_pb2.BotSession()
        self.session.CopyFrom(session)
        self.version = ""
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._done.wait(_HEARTBEAT_SECONDS):
            request = bots_pb2.UpdateBotSessionRequest(name=self.session.name, bot_session=self.session)
            try:
                self.version = self.bots.UpdateBotSession(request, timeout=_POLL_SECONDS).version
                self.session.version = self.version
            except grpc.RpcError as error:
                log(f"heartbeat of {self.session.name}: {error.code()}")


def serve(server: str, instance: str, bot_id: str, workdir: Path) -> None:
    """Keeps one bot session with `server` until asked to stop."""
    channel = grpc.insecure_channel(server, options=_GRPC_OPTIONS)
    bots = bots_pb2_grpc.BotsStub(channel)
    stager = Stager(Cas(channel, instance), workdir / "cache")
    worker = worker_pb2.Worker(
        devices=[
            worker_pb2.Device(
                handle=socket.gethostname(),
                properties=[
                    worker_pb2.Device.Property(key="OSFamily", value="linux"),
                    worker_pb2.Device.Property(key="ISA", value=os.uname().machine),
                ],
            )
        ]
    )
    session = bots_pb2.BotSession(bot_id=bot_id, status=bots_pb2.BotStatus.OK, worker=worker)
    session = bots.CreateBotSession(
        bots_pb2.CreateBotSessionRequest(parent=instance, bot_session=session), timeout=_POLL_SECONDS
    )
    log(f"bot session {session.name} ({bot_id}) on {server}, instance {instance!r}")
    while not _stopping.is_set():
        for lease in session.leases:
            if lease.state == bots_pb2.LeaseState.PENDING:
                lease.state = bots_pb2.LeaseState.ACTIVE
                session = bots.UpdateBotSession(
                    bots_pb2.UpdateBotSessionRequest(name=session.name, bot_session=session), timeout=_POLL_SECONDS
                )
                break
        else:
            for lease in session.leases:
                if lease.state == bots_pb2.LeaseState.ACTIVE:
                    with Heartbeat(bots, session) as heartbeat:
                        run_lease(stager, lease, workdir, bot_id)
                    session.version = heartbeat.version or session.version
            try:
                session = bots.UpdateBotSession(
                    bots_pb2.UpdateBotSessionRequest(name=session.name, bot_session=session), timeout=_POLL_SECONDS
                )
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.DEADLINE_EXCEEDED or _stopping.is_set():
                    raise
            # Completed leases that the server acknowledged are dropped from the session.
            kept = [lease for lease in session.leases if lease.state != bots_pb2.LeaseState.COMPLETED]
            del session.leases[:]
            session.leases.extend(kept)
    channel.close()


def _stop(signum: int, _frame: object) -> None:
    _stopping.set()
    process = _running
    if process is not None and process.poll() is None:
        process.kill()
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    """Parses the arguments and serves until SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--server", required=True, help="host:port of BuildGrid's Bots and CAS services")
    parser.add_argument("--instance", default="", help="the REAPI instance name")
    parser.add_argument("--bot-id", required=True, help="a name unique among the server's bots")
    parser.add_argument("--workdir", required=True, type=Path, help="blob cache and action directories")
    parser.add_argument("--hold-file", type=Path, help="hold actions whose outputs this file names (tests)")
    args = parser.parse_args(argv)
    global _hold_file
    _hold_file = args.hold_file
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    args.workdir.mkdir(parents=True, exist_ok=True)
    serve(args.server, args.instance, args.bot_id, args.workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
