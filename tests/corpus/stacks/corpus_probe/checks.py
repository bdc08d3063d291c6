"""One real call per corpus package, and the layer each package must be imported from.

Every check imports its package, makes one call whose answer is known, and raises when the answer
differs; it returns a short text of what came back. `CORPORA` maps each application layer of the
corpus (tests/corpus/stacks/BUILD.bazel) to the layer each distribution must come from.
"""

from __future__ import annotations

import importlib
import io
import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Check:
    """What `run` calls (shown in docs/compatibility.md), the function that calls it, and the module
    it imports, which must come from the same layer as the distribution's metadata (no shadowing)."""

    call: str
    run: Callable[[Path], str]
    module: str


def _expect(value: object, wanted: object) -> str:
    if value != wanted:
        raise AssertionError(f"got {value!r}, expected {wanted!r}")
    return repr(value)


def _numpy(layer: Path) -> str:
    import numpy

    return _expect(numpy.linalg.solve([[3.0, 1.0], [1.0, 2.0]], [9.0, 8.0]).round(6).tolist(), [2.0, 3.0])


def _scipy(layer: Path) -> str:
    from scipy import optimize

    return _expect(round(optimize.brentq(lambda x: x * x - 2.0, 0.0, 2.0), 6), 1.414214)


def _pandas(layer: Path) -> str:
    import pandas

    frame = pandas.DataFrame({"key": ["a", "b", "a"], "value": [1, 2, 3]})
    return _expect(frame.groupby("key")["value"].sum().to_dict(), {"a": 4, "b": 2})


def _sklearn(layer: Path) -> str:
    from sklearn.linear_model import LinearRegression

    model = LinearRegression().fit([[0.0], [1.0], [2.0]], [1.0, 3.0, 5.0])
    return _expect([round(float(model.coef_[0]), 6), round(float(model.intercept_), 6)], [2.0, 1.0])


def _pillow(layer: Path) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (255, 0, 0)).resize((4, 4)).save(buffer, "PNG")
    buffer.seek(0)
    with Image.open(buffer) as image:
        return _expect((image.size, image.getpixel((1, 1))), ((4, 4), (255, 0, 0)))


def _lxml(layer: Path) -> str:
    from lxml import etree

    return _expect(etree.fromstring(b"<a><b>corpus</b></a>").xpath("string(//b)"), "corpus")


def _cryptography(layer: Path) -> str:
    from cryptography.hazmat.primitives import hashes

    digest = hashes.Hash(hashes.SHA256())
    digest.update(b"abc")
    return _expect(digest.finalize().hex()[:16], "ba7816bf8f01cfea")


def _pydantic(layer: Path) -> str:
    import pydantic

    class Point(pydantic.BaseModel):
        x: int
        y: int = 0

    return _expect(Point.model_validate({"x": "3"}).model_dump(), {"x": 3, "y": 0})


def _pydantic_core(layer: Path) -> str:
    import pydantic_core

    return _expect(pydantic_core.from_json(b'{"a": [1, 2]}'), {"a": [1, 2]})


def _grpcio(layer: Path) -> str:
    from concurrent import futures

    import grpc

    handler = grpc.method_handlers_generic_handler(
        "corpus.Echo",
        {"Call": grpc.unary_unary_rpc_method_handler(lambda request, context: request[::-1])},
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = channel.unary_unary("/corpus.Echo/Call")(b"corpus", timeout=30)
    finally:
        server.stop(None)
    return _expect(reply, b"suproc")


def _protobuf(layer: Path) -> str:
    from google.protobuf import json_format, struct_pb2

    message = struct_pb2.Struct()
    message.update({"n": 2.0})
    parsed = struct_pb2.Struct.FromString(message.SerializeToString())
    return _expect(json_format.MessageToDict(parsed), {"n": 2.0})


def _googleapis(layer: Path) -> str:
    # google.rpc (this package) on google.protobuf (protobuf, another layer): one namespace, two layers.
    from google.protobuf import any_pb2
    from google.rpc import code_pb2, status_pb2

    status = status_pb2.Status(code=code_pb2.NOT_FOUND, message="corpus")
    status.details.append(any_pb2.Any(type_url="type.googleapis.com/x", value=b"1"))
    parsed = status_pb2.Status.FromString(status.SerializeToString())
    return _expect((parsed.code, parsed.message, len(parsed.details)), (5, "corpus", 1))


def _matplotlib(layer: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure = pyplot.figure(figsize=(2, 2), dpi=50)
    figure.gca().plot([0, 1, 2], [0, 1, 4])
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return _expect(buffer.getvalue()[:8], b"\x89PNG\r\n\x1a\n") + f" ({len(buffer.getvalue())} bytes)"


def _setuptools(layer: Path) -> str:
    # distutils-precedence.pth (in setuptools' layer) makes `import distutils` load setuptools' copy;
    # without the .pth, Python 3.11 imports its own stdlib distutils.
    import distutils

    origin = Path(distutils.__file__).parent
    return _expect(origin.parent.name + "/" + origin.name, "setuptools/_distutils")


def _ruamel_yaml(layer: Path) -> str:
    from corpus_probe import PRELOADED

    # The wheel has no ruamel/__init__.py: its -nspkg.pth makes `ruamel` at interpreter start.
    if "ruamel" not in PRELOADED:
        raise AssertionError("ruamel was not made by its -nspkg.pth at start-up")
    from ruamel.yaml import YAML

    return _expect(YAML(typ="safe").load("a: [1, 2]"), {"a": [1, 2]}) + ", ruamel made by its -nspkg.pth"


def _numexpr(layer: Path) -> str:
    import numexpr
    import numpy

    a = numpy.arange(4.0)
    return _expect(numexpr.evaluate("2 * a + 1", local_dict={"a": a}).tolist(), [1.0, 3.0, 5.0, 7.0])


def _tabulate(layer: Path) -> str:
    script = layer / "bin" / "tabulate"
    result = subprocess.run([script, "-f", "plain"], input="1 2\n3 4\n", capture_output=True, text=True, check=True)
    return _expect(result.stdout.split(), ["1", "2", "3", "4"])


def _jupyterlab(layer: Path) -> str:
    # A `.data/data` file: installed under the layer's prefix, not in site-packages.
    import jupyterlab_pygments

    package_json = layer / "share" / "jupyter" / "labextensions" / "jupyterlab_pygments" / "package.json"
    return _expect(json.loads(package_json.read_text())["name"], jupyterlab_pygments.__name__)


def _docopt(layer: Path) -> str:
    # Published as an sdist only: the layer holds the wheel built from it in a sandboxed action.
    import docopt

    return _expect(docopt.docopt("Usage: tool <name>", argv=["world"]), {"<name>": "world"})


def _certifi(layer: Path) -> str:
    import certifi

    text = Path(certifi.where()).read_text()
    count = text.count("BEGIN CERTIFICATE")
    if count < 50:
        raise AssertionError(f"cacert.pem holds {count} certificates")
    return f"{count} certificates"


def _torch(layer: Path) -> str:
    import torch

    x = torch.arange(6.0).reshape(2, 3)
    return _expect(float((x @ x.T).sum()), 83.0)


CHECKS: dict[str, Check] = {
    "numpy": Check("numpy.linalg.solve on a 2x2 system", _numpy, "numpy"),
    "scipy": Check("scipy.optimize.brentq: the root of x^2 - 2", _scipy, "scipy"),
    "pandas": Check("DataFrame.groupby(...).sum()", _pandas, "pandas"),
    "scikit-learn": Check("LinearRegression().fit on 3 points", _sklearn, "sklearn"),
    "pillow": Check("Image.new/resize, PNG save and reopen", _pillow, "PIL"),
    "lxml": Check("etree.fromstring + xpath", _lxml, "lxml"),
    "cryptography": Check("hashes.Hash(SHA256) (OpenSSL)", _cryptography, "cryptography"),
    "pydantic": Check("BaseModel.model_validate (str to int)", _pydantic, "pydantic"),
    "pydantic-core": Check("pydantic_core.from_json", _pydantic_core, "pydantic_core"),
    "grpcio": Check("an in-process server and a unary call over 127.0.0.1", _grpcio, "grpc"),
    "protobuf": Check("google.protobuf Struct serialize/parse, json_format", _protobuf, "google.protobuf"),
    "googleapis-common-protos": Check(
        "google.rpc Status holding a google.protobuf Any, round trip", _googleapis, "google.rpc"
    ),
    "matplotlib": Check("pyplot plot + savefig PNG (Agg)", _matplotlib, "matplotlib"),
    "setuptools": Check(
        "`import distutils` resolves to setuptools/_distutils (distutils-precedence.pth)", _setuptools, "setuptools"
    ),
    "ruamel.yaml": Check(
        "YAML(typ='safe').load; `ruamel` made by ruamel.yaml-*-nspkg.pth", _ruamel_yaml, "ruamel.yaml"
    ),
    "numexpr": Check("numexpr.evaluate on a numpy array from another layer", _numexpr, "numexpr"),
    "tabulate": Check("console script: the layer's bin/tabulate, in a subprocess", _tabulate, "tabulate"),
    "jupyterlab-pygments": Check(
        "read share/jupyter/labextensions/.../package.json (.data/data)", _jupyterlab, "jupyterlab_pygments"
    ),
    "certifi": Check("read certifi.where() (package data)", _certifi, "certifi"),
    "docopt": Check("docopt.docopt on a usage string (built from its sdist: build_from_sdist)", _docopt, "docopt"),
    "torch": Check("torch.arange(6).reshape(2, 3) @ its transpose, summed", _torch, "torch"),
}

CORPORA: dict[str, dict[str, str]] = {
    # The reduced corpus CI runs: small wheels, the same crossings.
    "ci_app": {
        "numpy": "ci_base",
        "protobuf": "ci_base",
        "setuptools": "ci_base",
        "certifi": "ci_base",
        "googleapis-common-protos": "ci_services",
        "ruamel.yaml": "ci_services",
        "numexpr": "ci_app",
        "tabulate": "ci_app",
        "jupyterlab-pygments": "ci_app",
        "docopt": "ci_app",
    },
    "corpus_app": {
        "numpy": "sci_framework",
        "scipy": "sci_framework",
        "pandas": "sci_framework",
        "pillow": "sci_framework",
        "protobuf": "sci_framework",
        "setuptools": "sci_framework",
        "certifi": "sci_framework",
        "torch": "sci_framework",
        "scikit-learn": "services_framework",
        "lxml": "services_framework",
        "cryptography": "services_framework",
        "pydantic": "services_framework",
        "pydantic-core": "services_framework",
        "grpcio": "services_framework",
        "googleapis-common-protos": "services_framework",
        "ruamel.yaml": "services_framework",
        "matplotlib": "corpus_app",
        "numexpr": "corpus_app",
        "tabulate": "corpus_app",
        "jupyterlab-pygments": "corpus_app",
    },
}


def installed_layer(distribution: str, deployed: Path) -> tuple[str, Path]:
    """The version of `distribution` this interpreter finds, and the deployed layer directory holding it."""
    from importlib import metadata

    dist = metadata.distribution(distribution)
    site_packages = Path(str(dist.locate_file(""))).resolve()
    deployed = deployed.resolve()
    layer = deployed / site_packages.relative_to(deployed).parts[0]
    return dist.version, layer


def module_layer(name: str, deployed: Path) -> str:
    """The deployed layer the module `name` was imported from."""
    module = importlib.import_module(name)
    where = module.__file__ or next(iter(module.__path__))
    return Path(where).resolve().relative_to(deployed.resolve()).parts[0]


def run_check(distribution: str, expected_layer: str, deployed: Path) -> dict[str, object]:
    """Runs one check; the row of docs/compatibility.md, with `ok` True only when it passed in the expected layer."""
    check = CHECKS[distribution]
    row: dict[str, object] = {"package": distribution, "version": "", "layer": "", "call": check.call}
    try:
        version, layer = installed_layer(distribution, deployed)
        row["version"] = version
        row["layer"] = layer.name
        if layer.name != expected_layer:
            raise AssertionError(f"installed in layer {layer.name}, expected {expected_layer}")
        row["result"] = check.run(layer)
        imported = module_layer(check.module, deployed)
        if imported != layer.name:
            raise AssertionError(f"{check.module} was imported from layer {imported}, not {layer.name}")
        row["ok"] = True
    except Exception as error:  # every failure is a row of the table, with its reason
        row["result"] = f"FAILED: {type(error).__name__}: {error}"
        row["ok"] = False
    return row
