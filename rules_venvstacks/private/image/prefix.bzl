"""What every image target checks at analysis: the prefix, and that the target platform is Linux.

Exported as `image_testlib` for the Starlark unit tests.
"""

load("//rules_venvstacks/private/common:paths.bzl", "normalized_path")
load("//rules_venvstacks/private/common:platforms.bzl", "PLATFORMS", "platform_name")

DEFAULT_IMAGE_PREFIX = "/opt/venvstacks"

# Layer compressions (keep in sync: tools/venvstacks_tool/image/blobs.py MEDIA_TYPES).
IMAGE_COMPRESSIONS = ["gzip", "zstd"]
DEFAULT_IMAGE_COMPRESSION = "gzip"

# Directories a Linux root filesystem owns (the FHS): a layer deployed onto one would replace the
# base image's own files.
_SYSTEM_DIRS = [
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/home",
    "/lib",
    "/lib32",
    "/lib64",
    "/media",
    "/mnt",
    "/opt",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/srv",
    "/sys",
    "/tmp",
    "/usr",
    "/usr/bin",
    "/usr/include",
    "/usr/lib",
    "/usr/lib64",
    "/usr/libexec",
    "/usr/local",
    "/usr/local/bin",
    "/usr/local/lib",
    "/usr/sbin",
    "/usr/share",
    "/var",
    "/var/lib",
    "/var/tmp",
]

def _normpath(path):
    return "/" + normalized_path(path)

def image_prefix_problem(prefix, layer_name):
    """Why `prefix` cannot hold the layer `layer_name` in an image, or "".

    Args:
      prefix: the image prefix as written.
      layer_name: the layer's directory name under it.

    Returns:
      "" or a phrase starting with the prefix.
    """
    if not prefix.startswith("/"):
        return "prefix '%s' is not absolute" % prefix
    if _normpath(prefix) != prefix:
        return "prefix '%s' is not normalised (write '%s')" % (prefix, _normpath(prefix))
    if prefix == "/":
        return "prefix '/' would put the layers beside the base image's own directories"
    target = prefix + "/" + layer_name
    if target in _SYSTEM_DIRS:
        return "prefix '%s' with the layer '%s' gives '%s', a directory of the base image's own" % (prefix, layer_name, target)
    return ""

def check_image_prefix(label, prefix, layer_name):
    """Fails at analysis, naming `label`, when `image_prefix_problem` finds one.

    Args:
      label: the image target's label.
      prefix: the image prefix as written.
      layer_name: the layer's directory name under it.
    """
    problem = image_prefix_problem(prefix, layer_name)
    if problem:
        fail("%s: %s" % (label, problem))

def image_platform_problem(triple):
    """Why a layer built for the PBS `triple` cannot go into a container image, or "".

    Args:
      triple: the PBS triple of the layer's target platform.

    Returns:
      "" or a phrase naming the platform by its short name.
    """
    for entry in PLATFORMS.values():
        if entry.triple == triple:
            if entry.os == "linux":
                return ""
            return "%s is a %s platform: container images are for Linux targets only (--platforms=//platforms:linux_x86_64 or linux_aarch64)" % (platform_name(triple), entry.os)
    return "'%s' is not a platform an image can be built for" % triple

def check_image_platform(label, layer):
    """Fails at analysis, naming `label` and the layer, for a layer of a non-Linux target.

    A runtime without a build for the target (`unavailable`) is left to the layer's own action,
    which fails with the runtime's message.

    Args:
      label: the image target's label.
      layer: VenvstacksLayerInfo of the layer going into the image.
    """
    triple = layer.runtime.platform_triple
    if not triple:
        return
    problem = image_platform_problem(triple)
    if problem:
        fail("%s: layer '%s' (%s): %s" % (label, layer.layer_name, layer.label, problem))

image_testlib = struct(
    image_prefix_problem = image_prefix_problem,
    image_platform_problem = image_platform_problem,
)
