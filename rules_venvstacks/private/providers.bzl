"""Providers shared by the rules_venvstacks rules."""

VenvstacksRuntimeInfo = provider(
    doc = "A fetched python-build-standalone runtime, as declared with `venvstacks.runtime`.",
    fields = {
        "name": "The runtime's name in MODULE.bazel, e.g. 'cpython3_12'.",
        "python_version": "The exact CPython version, e.g. '3.12.7'.",
        "platform": "The PBS target triple the runtime was built for.",
        "pbs_release": "The PBS release tag, or '' for a custom build.",
        "source_archive": "File: the archive exactly as downloaded (sha256-verified).",
        "source_urls": "list of the URLs it was fetched from ([] for a local archive).",
        "source_sha256": "The archive's sha256 (hex).",
        "strip_prefix": "Directory inside the archive that holds the installation, e.g. 'python'.",
        "interpreter": "File: the unpacked interpreter, used to run the tool in actions.",
        "files": "depset of File: what the interpreter needs at run time (stdlib).",
        "tool_site": "depset of File: the wheels the tool needs (zstandard), unpacked.",
        "tool_site_path": "Execroot-relative directory of the tool's wheels, for sys.path.",
        "source_date_epoch": "int: the mtime of every archive member, from the PBS release date.",
    },
)

VenvstacksLayerInfo = provider(
    doc = "A built layer: its archive and its metadata JSON.",
    fields = {
        "layer_name": "The layer's directory name inside the archive and when deployed.",
        "kind": "'runtime', 'framework' or 'application'.",
        "archive": "File: the deterministic layer archive.",
        "metadata": "File: the layer's metadata JSON.",
        "python_version": "The exact CPython version of the layer's runtime.",
        "runtime": "VenvstacksRuntimeInfo of the runtime the layer is built on.",
    },
)
