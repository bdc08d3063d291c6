"""Values the Starlark rules and the Python tool must agree on, each stated once per language.

Keep in sync with the Python side named next to each value: tests/unit/test_constants.py reads
this file and fails when a value differs from the tool's.
"""

# tools/venvstacks_tool/core/archive.py ARCHIVE_FORMATS.
ARCHIVE_FORMATS = ["tar.zst", "tar.xz", "zip"]

# tools/venvstacks_tool/build/layer.py BYTECODE_MODES: `compiled` writes deterministic .pyc
# files into a layer, `none` ships the sources only.
BYTECODE_MODES = ["compiled", "none"]

# The defaults of every layer rule and macro (Starlark only: the rules always pass both).
DEFAULT_ARCHIVE_FORMAT = "tar.zst"
DEFAULT_BYTECODE = "compiled"

# tools/venvstacks_tool/core/protocol.py LAYER_KINDS.
LAYER_KINDS = ["framework", "application"]

# tools/venvstacks_tool/core/protocol.py PYTHON_PRE_RELEASES: the tags of a pre-release CPython
# version (3.13.0rc2), which versions.bzl `is_python_version` accepts after X.Y.Z.
PYTHON_PRE_RELEASES = ["a", "b", "rc"]

# tools/venvstacks_tool/core/platforms.py DEFAULT_GLIBC_MINIMUM and DEFAULT_MACOS_MINIMUM: the
# oldest glibc and macOS a lock's wheels must run on when its runtime sets no `glibc_minimum` or
# `macos_minimum` (chosen by measurement: docs/platforms.md, "Why these defaults"). A runtime's
# '' stands for them and the tool applies them; here they are what the docs say.
DEFAULT_GLIBC_MINIMUM = "2.28"
DEFAULT_MACOS_MINIMUM = "14.0"

# tools/venvstacks_tool/lock/index_options.py DEFAULT_INDEX_URL.
DEFAULT_INDEX_URL = "https://pypi.org/simple"

# tools/venvstacks_tool/core/protocol.py LAYER_NAME_RE: a layer name is its deployed directory's
# name: letters, digits, '_', '.', '-' and '@', not starting with '.', '-' or '@' ('@' as venvstacks
# allows it: a versioned layer deploys as `NAME@N`, and `layerF@1` is a name).
LAYER_NAME_FIRST = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"
LAYER_NAME_REST = LAYER_NAME_FIRST + ".-@"

# tools/venvstacks_tool/core/protocol.py LAYER_NAME_MAX_LENGTH: a deployed directory's name stays
# well below file systems' 255-byte limit, with room for deploy's temporary prefixes.
LAYER_NAME_MAX_LENGTH = 100

# tools/venvstacks_tool/deploy/run_cache.py MARKER_NAME and USED_NAME: in an entry of the `bazel
# run` cache, the file written last (the entry is complete) and the file whose mtime is its last
# run; the launcher's fast path (deploy/run.bzl) reads both.
RUN_CACHE_MARKER_NAME = ".venvstacks-run-complete"
RUN_CACHE_USED_NAME = ".venvstacks-run-used"
