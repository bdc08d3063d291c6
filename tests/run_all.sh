#!/usr/bin/env bash
# The whole test suite: lint, unit tests and the Bazel integration tests.
#
#   tests/run_all.sh            # everything (what CI runs)
#   tests/run_all.sh -k archive # extra arguments go to pytest
#
# Installs what it needs (pip packages for the test runner, buildifier from npm, and a Bazel 7
# through tests/bazel.sh), so it works on a fresh Debian machine as root.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { echo "== $*" >&2; }

step "python test dependencies, and the tool and test support as a development install"
python3 -m pip install -q --disable-pip-version-check -r tests/requirements.txt
python3 -m pip install -q --disable-pip-version-check --no-deps -e .

if ! command -v buildifier >/dev/null; then
  step "buildifier (npm @bazel/buildifier)"
  npm install -g --silent @bazel/buildifier@8.2.1 >&2
fi
if ! [[ -x /usr/bin/python3.11 || -x /usr/bin/python3.12 || -x /usr/bin/python3.13 ]]; then
  step "distro CPython (the tests package it as a PBS-layout runtime)"
  apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3 >&2
fi
# tests/integration/test_remote_cache.py: nginx (with WebDAV) is the real HTTP remote cache;
# libfaketime and a C compiler (a one-line preload library) shift the clock and umask of actions.
missing=()
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || missing+=(nginx-light)
compgen -G '/usr/lib/*/faketime/libfaketime.so.1' >/dev/null || missing+=(faketime)
command -v cc >/dev/null || missing+=(gcc)
# tests/integration/test_sdist.py: the local runtime packs the distro CPython's headers, which a
# compiled sdist is built against (python3-dev).
compgen -G '/usr/include/python3.*/Python.h' >/dev/null || missing+=(python3-dev)
# tests/integration/test_aarch64.py: qemu-user runs the aarch64 stack (the test registers it with
# binfmt_misc and extracts Debian's arm64 CPython with mmdebstrap, which tests/bazel.sh installs).
[[ -e /usr/lib/binfmt.d/qemu-aarch64.conf ]] || missing+=(qemu-user-static)
# tests/integration/test_images.py: umoci (makes the base image layout, unpacks the images) and
# skopeo (validates and copies them), the daemonless OCI tools.
command -v umoci >/dev/null || missing+=(umoci)
command -v skopeo >/dev/null || missing+=(skopeo)
# tests/integration/test_remote_execution.py: PostgreSQL holds BuildGrid's scheduler state.
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || missing+=(postgresql)
if ((${#missing[@]})); then
  step "remote cache, reproducibility and OCI image test tools (${missing[*]})"
  apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2
fi
# The remote execution service: BuildGrid in its own venv (on a Python 3.13+ found here, else 0.4.4
# on this Python); a no-op once made.
python3 -m venvstacks_testing.reapi_service --install >/dev/null

step "ruff"
python3 -m ruff check tools tests examples docs bench
python3 -m ruff format --check tools tests examples docs bench

step "mypy --strict (the tool and the maintainer tools)"
python3 -m mypy

step "buildifier"
buildifier -mode=check -lint=warn -r MODULE.bazel BUILD.bazel rules_venvstacks platforms settings tools tests examples

step "bazel (provisioned once, then reused)"
tests/bazel.sh --version

step "pytest: unit and integration tests"
# --durations: the slowest tests at the end of the log, to see where the suite's time goes.
python3 -m pytest --durations=30 tests "$@"
