"""The layers (and archives) of one or more stacks, in deployment order: for every rule that deploys or gathers a stack."""

load(":providers.bzl", "VenvstacksAbsentLayerInfo", "VenvstacksLayerInfo")
load(":tool.bzl", "shell_quote")

def present_layers(targets):
    """The layers of a stack's `layers` that are built for the target platform, in order.

    A stack names each layer's `NAME.in_stack` (layer_macros.bzl): the layer itself on the
    platforms it is built for, an `absent_layer` (build/absent_layer.bzl) on the others, which is
    left out here.

    Args:
      targets: the stack's `layers` targets.

    Returns:
      list of VenvstacksLayerInfo (possibly empty: every layer narrowed away).
    """
    return [target[VenvstacksLayerInfo] for target in targets if VenvstacksAbsentLayerInfo not in target]

def stack_layers(owner, tops):
    """Every layer below and including `tops`, in deployment order, each once.

    Args:
      owner: the label of the target asking, for the error message.
      tops: list of VenvstacksLayerInfo (the top layers of one or more stacks on shared lower layers).

    Returns:
      list of VenvstacksLayerInfo: the runtime(s) first, then each layer after the layers it
      needs (the order of each top's `lower_layers`, merged); a layer shared by several stacks
      appears once.
    """
    seen = {}
    ordered = []
    for top in tops:
        for layer in top.lower_layers + [top]:
            other = seen.get(layer.layer_name)
            if other == None:
                seen[layer.layer_name] = layer
                ordered.append(layer)
            elif other.label != layer.label:
                fail("%s: two layers are named '%s': %s and %s" % (owner, layer.layer_name, other.label, layer.label))
    return ordered

def stack_archives(owner, tops):
    """The tool's `--archive A --metadata M` arguments for the stacks of `tops`, and their files.

    Deploy checks each archive's size and sha256 against its metadata before unpacking it (the
    runtime layer's metadata is its archive record), and refuses an archive without one.

    Args:
      owner: the label of the target asking, for the error message.
      tops: list of VenvstacksLayerInfo.

    Returns:
      (arguments, files): runfiles-relative, shell-quoted arguments in deployment order, and the
      archives and metadata files for the runfiles.
    """
    files = []
    arguments = []
    for layer in stack_layers(owner, tops):
        files += [layer.archive, layer.metadata]
        arguments += ["--archive", shell_quote(layer.archive.short_path), "--metadata", shell_quote(layer.metadata.short_path)]
    return arguments, files
