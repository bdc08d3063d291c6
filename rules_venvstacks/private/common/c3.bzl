"""The order of a layer's frameworks: the C3 linearization of the framework graph, as venvstacks computes it.

A layer names the frameworks it uses directly; each framework names its own. The full order is
the one Python gives a class's bases (https://www.python.org/download/releases/2.3/mro/), with the
layer itself left out: each framework comes before the frameworks it sits on, and the frameworks a
layer lists keep their listed order. venvstacks (`StackSpec._linearize_C3`) merges the same lists
in the same way, so a stack declared in both tools gets one sys.path order.

Pure functions over strings (framework labels or layer names), so they are unit-tested without a
build (tests/starlark/c3_test.bzl) and the lock rules and the layer rule share them.
"""

def c3_linearize(declared, linearizations):
    """The C3 merge of `declared` and the frameworks' own orders, or what blocks it.

    Starlark has no recursion and no `while`: the merge runs in a bounded `for` loop, one
    framework placed per round (a merge places at most as many frameworks as the lists hold).

    Args:
      declared: list of keys (e.g. labels as strings): the frameworks a layer lists, in its order.
      linearizations: dict from each key of `declared` to the list of keys below that framework,
        in its own (already linearized) order, without the framework itself.

    Returns:
      struct(order, conflict). `order`: every framework below the layer, upper ones first, or
      None when there is none. `conflict`: None, or struct(frameworks, sequences) when the lists
      contradict each other: `frameworks`, the keys none of which can come next (each must follow
      another one), and `sequences`, the orders left unmerged as struct(owner, keys), `owner`
      being the framework whose order it is, or None for the layer's own list.
    """
    sequences = [struct(owner = key, keys = [key] + list(linearizations[key])) for key in declared]
    sequences.append(struct(owner = None, keys = list(declared)))
    size = 0
    for sequence in sequences:
        size += len(sequence.keys)
    order = []
    for _ in range(size + 1):
        sequences = [s for s in sequences if s.keys]
        if not sequences:
            return struct(order = order, conflict = None)
        tails = {}
        for sequence in sequences:
            for key in sequence.keys[1:]:
                tails[key] = True
        chosen = None
        for sequence in sequences:
            if sequence.keys[0] not in tails:
                chosen = sequence.keys[0]
                break
        if chosen == None:
            heads = []
            for sequence in sequences:
                if sequence.keys[0] not in heads:
                    heads.append(sequence.keys[0])
            return struct(order = None, conflict = struct(frameworks = heads, sequences = sequences))
        order.append(chosen)
        sequences = [
            struct(owner = s.owner, keys = s.keys[1:]) if s.keys[0] == chosen else s
            for s in sequences
        ]

    # Unreachable: every round shortens at least one list.
    fail("c3_linearize did not converge")

def c3_conflict_message(conflict):
    """A sentence naming the frameworks of `conflict` (from `c3_linearize`) and the orders that disagree.

    Args:
      conflict: the `conflict` struct `c3_linearize` returned.

    Returns:
      e.g. "no order puts every framework before the frameworks it sits on: //a:fw1, //a:fw2
      conflict (this layer lists [//a:fw1, //a:fw2]; //a:fw2 sits on [//a:fw1])".
    """
    orders = []
    for sequence in conflict.sequences:
        if sequence.owner == None:
            orders.append("this layer lists [%s]" % ", ".join(sequence.keys))
        elif sequence.keys[0] == sequence.owner:
            if len(sequence.keys) == 1:
                # Only the framework itself is left: it says nothing about the others.
                continue
            orders.append("%s sits on [%s]" % (sequence.owner, ", ".join(sequence.keys[1:])))
        else:
            orders.append("%s's remaining order is [%s]" % (sequence.owner, ", ".join(sequence.keys)))
    return "no order puts every framework before the frameworks it sits on: %s conflict (%s)" % (
        ", ".join(conflict.frameworks),
        "; ".join(orders),
    )

def duplicates(keys):
    """The keys listed more than once in `keys`, in order of first repetition.

    Args:
      keys: a list of strings.

    Returns:
      list of the repeated strings.
    """
    seen = {}
    repeated = []
    for key in keys:
        if key in seen and key not in repeated:
            repeated.append(key)
        seen[key] = True
    return repeated

c3_testlib = struct(
    linearize = c3_linearize,
    conflict_message = c3_conflict_message,
    duplicates = duplicates,
)
