#!/usr/bin/env bash
# Runs a real Bazel >= 7 with the given arguments: `tests/bazel.sh build //...`.
#
# The `bazel` on PATH is used when it is 7 or newer. Otherwise (Debian bookworm ships Bazel 4,
# bazelisk cannot reach its download host here) this provisions Debian sid's bazel-bootstrap 7.x
# in a cached root filesystem and runs Bazel inside it:
#
#   * the root is built once with mmdebstrap under $VENVSTACKS_BAZEL_ROOT and reused after;
#   * Bazel runs in a private mount namespace entered with pivot_root (not chroot: Bazel's
#     linux-sandbox needs a real mount namespace), with the checkout, /tmp, the Bazel cache
#     directory and any $VENVSTACKS_BAZEL_BIND paths bind-mounted at their host paths, so
#     absolute paths mean the same inside and out;
#   * the host's extra CA certificates are carried into the root (the registries are reached
#     through a TLS proxy);
#   * modules that bazel_tools names but Debian does not map (apple_support, buildozer, protobuf,
#     zlib) get empty stub modules, so no build needs the Bazel Central Registry.
#
# Environment:
#   VENVSTACKS_BAZEL_ROOT   root filesystem (default /var/cache/rules_venvstacks/sid-root)
#   VENVSTACKS_BAZEL_CACHE  output user root + repository cache (default /var/cache/rules_venvstacks/bazel)
#   VENVSTACKS_BAZEL_BIND   extra host directories to bind-mount, colon-separated
#   VENVSTACKS_BAZEL_FORCE_ROOT=1  use the sid root even when a Bazel >= 7 is on PATH
set -euo pipefail

ROOT=${VENVSTACKS_BAZEL_ROOT:-/var/cache/rules_venvstacks/sid-root}
CACHE=${VENVSTACKS_BAZEL_CACHE:-/var/cache/rules_venvstacks/bazel}
CHECKOUT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STUB_MODULES=(apple_support buildozer protobuf zlib)
# Shared libraries the test runtimes (a relocated Debian CPython) load; Bazel itself needs none.
ROOT_PACKAGES=bazel-bootstrap,ca-certificates,mount,libexpat1,zlib1g,libffi8,libssl3t64,liblzma5,libbz2-1.0,libsqlite3-0

log() { echo "bazel.sh: $*" >&2; }
die() {
  echo "bazel.sh: error: $*" >&2
  exit 1
}

host_bazel_major() {
  command -v bazel >/dev/null 2>&1 || return 1
  local version
  version=$(bazel --version 2>/dev/null | awk '{print $2}') || return 1
  echo "${version%%.*}"
}

# The rc file for this checkout (the one settings file per checkout, so checkouts do not race).
rc_file() {
  echo "$CACHE/rc/$(echo "$CHECKOUT" | tr '/' '_').bazelrc"
}

# --- Inside the new mount namespace: build the root's view, pivot into it, run Bazel. ---
enter_root() {
  local cwd=$1
  shift
  mount --bind "$ROOT" "$ROOT"
  mount -t proc proc "$ROOT/proc"
  mount --rbind /dev "$ROOT/dev"
  mount --rbind /sys "$ROOT/sys"
  local dir
  local binds=(/tmp "$CACHE" "$CHECKOUT")
  if [[ -n ${VENVSTACKS_BAZEL_BIND:-} ]]; then
    IFS=: read -r -a extra <<<"$VENVSTACKS_BAZEL_BIND"
    binds+=("${extra[@]}")
  fi
  for dir in "${binds[@]}"; do
    [[ -d $dir ]] || die "cannot bind-mount '$dir': not a directory"
    mkdir -p "$ROOT$dir"
    mount --rbind "$dir" "$ROOT$dir"
  done
  cd "$ROOT"
  mkdir -p oldroot
  pivot_root . oldroot
  umount -l /oldroot
  export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  cd "$cwd" || die "working directory '$cwd' is not visible inside the Bazel root; set VENVSTACKS_BAZEL_BIND"
  if [[ ${1:-} == --update-ca ]]; then
    exec update-ca-certificates -f >/dev/null
  fi
  exec bazel "--output_user_root=$CACHE/output_user_root" \
    "--bazelrc=$(rc_file)" --max_idle_secs=900 "$@"
}

provision_root() {
  [[ $(id -u) == 0 ]] || die "provisioning Bazel 7 needs root (apt-get, mmdebstrap, unshare); run as root or put a Bazel >= 7 on PATH"
  command -v unshare >/dev/null || die "'unshare' (util-linux) is missing"
  if [[ ! -e $ROOT/.venvstacks-ready ]]; then
    if ! command -v mmdebstrap >/dev/null; then
      log "installing mmdebstrap"
      apt-get update -q >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q mmdebstrap >&2
    fi
    log "building Debian sid root with bazel-bootstrap in $ROOT (once, about a minute)"
    rm -rf "$ROOT.partial"
    mkdir -p "$(dirname "$ROOT")"
    mmdebstrap --variant=minbase --aptopt='Acquire::Check-Valid-Until "false"' \
      --include="$ROOT_PACKAGES" sid "$ROOT.partial" http://deb.debian.org/debian >&2 ||
      die "mmdebstrap failed to build the sid root (is deb.debian.org reachable?)"
    rm -rf "$ROOT"
    mv "$ROOT.partial" "$ROOT"
    touch "$ROOT/.venvstacks-ready"
  fi
  local name rc="$ROOT/etc/bazel/bazelrc"
  for name in "${STUB_MODULES[@]}"; do
    local stub="$ROOT/opt/venvstacks-stub-modules/$name"
    if [[ ! -e $stub/MODULE.bazel ]]; then
      mkdir -p "$stub"
      echo "module(name = \"$name\")" >"$stub/MODULE.bazel"
      : >"$stub/BUILD.bazel"
    fi
    grep -q -- "--override_module=$name=" "$rc" ||
      echo "common --override_module=$name=/opt/venvstacks-stub-modules/$name" >>"$rc"
  done
  mkdir -p "$CACHE/rc"
  {
    echo "common --repository_cache=$CACHE/repository_cache"
    # Debian's system bazelrc turns on --sandbox_debug, which floods every failure report.
    echo "build --nosandbox_debug"
    # Bazel 7's sandbox gives actions an empty /tmp; a checkout under /tmp (a CI clone, a test's
    # copy) that a workspace uses through local_path_override must stay visible in it.
    if [[ $CHECKOUT == /tmp/* ]]; then
      echo "common --sandbox_add_mount_pair=$CHECKOUT"
    fi
  } >"$(rc_file)"
  # Carry the host's extra CA certificates in (they change rarely: compare before updating).
  local host_cas=/usr/local/share/ca-certificates
  if [[ -d $host_cas ]] && ! diff -rq "$host_cas" "$ROOT$host_cas" >/dev/null 2>&1; then
    log "installing the host's CA certificates into the root"
    rm -rf "$ROOT$host_cas"
    cp -r "$host_cas" "$ROOT$host_cas"
    unshare --mount --propagation private --fork "$0" --venvstacks-enter "$CHECKOUT" --update-ca ||
      die "update-ca-certificates failed inside the root"
  fi
}

if [[ ${1:-} == --venvstacks-enter ]]; then
  shift
  enter_root "$@"
fi

if [[ ${VENVSTACKS_BAZEL_FORCE_ROOT:-0} != 1 ]] && major=$(host_bazel_major) && ((major >= 7)); then
  exec bazel "$@"
fi
provision_root
exec unshare --mount --propagation private --fork "$0" --venvstacks-enter "$PWD" "$@"
