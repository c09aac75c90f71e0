"""Tests for tfvae.serve and tools.client: real requests to a server on 127.0.0.1.

The server runs as its own process on an ephemeral port, serving the smoke-trained dpVAE and
VAE exports of ``tests/test_export.py`` (trained once per session). Every signature answers
over REST in both JSON formats, as TF Serving's wire format prescribes, with the SavedModel's
own outputs; malformed requests get 400/404 with an ``error`` message on the same keep-alive
connection, and the server keeps serving. gRPC is checked through the official
``tensorflow-serving-api`` stubs when that package is installed.
"""

import concurrent.futures
import http.client
import json
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
import tensorflow as tf

from tests.smoke import smoke_root
from tests.test_export import export_smoke_models
from tools import client as client_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_BATCH = 4
MODELS = ("dpvae", "vae")
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": REPO}

# Runs ``python -m tfvae.serve`` and reports, once the models are loaded, whether any tfvae
# module besides tfvae.serve (or TFP) was imported.
SERVER = textwrap.dedent(
    """
    import sys
    from absl import app
    import tfvae.serve as serve

    make_server = serve.make_server

    def reporting_make_server(*args, **kwargs):
        roots = ("tfvae", "tensorflow_probability")
        extra = sorted(
            m for m in sys.modules
            if m.split(".")[0] in roots and m not in ("tfvae", "tfvae.serve")
        )
        print("IMPORTED", extra, flush=True)
        return make_server(*args, **kwargs)

    serve.make_server = reporting_make_server
    serve._define_flags()
    app.run(serve.main)
    """
)


def _grpc_available() -> bool:
    try:
        import grpc  # noqa: F401
        from tensorflow_serving.apis import prediction_service_pb2_grpc  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The running dev server: base URL, gRPC target (or None), what it imported."""
    models, _ = export_smoke_models(smoke_root(tmp_path_factory))
    log = tmp_path_factory.mktemp("serve") / "server.log"
    cmd = [sys.executable, "-c", SERVER, f"--model_base_path={models}", "--port=0"]
    cmd.append(f"--max_batch={MAX_BATCH}")
    if _grpc_available():
        cmd.append("--grpc_port=0")
    with open(log, "w") as stderr:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, text=True, env=ENV)
    # Blocking reads, with a watchdog that kills a server that never gets ready (TF import
    # and model loads take a while on a busy machine).
    watchdog = threading.Timer(600, proc.kill)
    watchdog.start()
    lines = []
    while not any(line.startswith("Serving ") for line in lines):
        line = proc.stdout.readline()
        if not line:
            watchdog.cancel()
            raise RuntimeError(f"server did not start: {lines}\n{log.read_text()[-3000:]}")
        lines.append(line.strip())
    watchdog.cancel()
    info = {"imported": next(x for x in lines if x.startswith("IMPORTED"))}
    info["url"] = lines[-1].rsplit(" on ", 1)[1]
    grpc_line = [x for x in lines if x.startswith("gRPC on ")]
    info["grpc"] = grpc_line[0].split(" on ", 1)[1] if grpc_line else None
    info["models"] = models
    yield info
    proc.terminate()
    proc.wait(timeout=60)


@pytest.fixture(scope="module")
def reference(server):
    """name -> the exported SavedModel's signatures, loaded in this process."""
    return {n: tf.saved_model.load(os.path.join(server["models"], n, "1")) for n in MODELS}


def _request(server, method: str, path: str, body=None, conn=None):
    """(status, JSON payload); ``body`` is sent as given if bytes/str, else JSON-encoded."""
    host = server["url"].split("//", 1)[1]
    own = conn is None
    conn = conn or http.client.HTTPConnection(host, timeout=120)
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    payload = json.loads(response.read())
    if own:
        conn.close()
    return response.status, payload


def _inputs(reference, name) -> dict:
    """Feeds for every signature of model ``name``."""
    sigs = reference[name].signatures
    d = sigs["decode"].structured_input_signature[1]["z"].shape[1]
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(2, 28, 28, 1)).astype(np.float32)
    z = rng.normal(size=(2, d)).astype(np.float32)
    feeds = {
        "generate": {"seed": np.array([3, 8], np.int64)},
        "generate_with_temperature": {
            "seed": np.array([3, 8], np.int64),
            "temperature": np.array([0.5, 1.5], np.float32),
        },
        "decode": {"z": z},
        "encode": {"images": images},
        "reconstruct": {"images": images},
    }
    if "decode_z0" in sigs:
        feeds["decode_z0"] = {"z0": z}
    return feeds


def _expected(reference, name, signature, feeds) -> dict:
    fn = reference[name].signatures[signature]
    return {k: v.numpy() for k, v in fn(**{k: tf.constant(v) for k, v in feeds.items()}).items()}


def test_server_imports_no_tfvae_model_code(server):
    assert server["imported"] == "IMPORTED []"


def test_status_and_metadata(server, reference):
    for name in MODELS:
        for path in (f"/v1/models/{name}", f"/v1/models/{name}/versions/1"):
            status, payload = _request(server, "GET", path)
            assert status == 200
            assert payload == {
                "model_version_status": [
                    {
                        "version": "1",
                        "state": "AVAILABLE",
                        "status": {"error_code": "OK", "error_message": ""},
                    }
                ]
            }
        status, payload = _request(server, "GET", f"/v1/models/{name}/metadata")
        assert status == 200
        assert payload["model_spec"] == {"name": name, "signature_name": "", "version": "1"}
        defs = payload["metadata"]["signature_def"]["signature_def"]
        assert set(defs) == set(reference[name].signatures)
        seed = defs["generate"]["inputs"]["seed"]
        assert seed["dtype"] == "DT_INT64"
        assert [d["size"] for d in seed["tensor_shape"]["dim"]] == ["-1"]
        images = defs["encode"]["inputs"]["images"]["tensor_shape"]["dim"]
        assert [d["size"] for d in images] == ["-1", "28", "28", "1"]
        assert defs["generate"]["method_name"] == "tensorflow/serving/predict"


@pytest.mark.parametrize("name", MODELS)
def test_every_signature_over_rest_in_both_formats(server, reference, name):
    for signature, feeds in _inputs(reference, name).items():
        want = _expected(reference, name, signature, feeds)
        lists = {k: v.tolist() for k, v in feeds.items()}
        # Columnar: one output comes back bare, several as an object.
        status, payload = _request(
            server,
            "POST",
            f"/v1/models/{name}/versions/1:predict",
            {"signature_name": signature, "inputs": lists},
        )
        assert status == 200, payload
        outputs = payload["outputs"]
        got = outputs if isinstance(outputs, dict) else {"images": outputs}
        assert set(got) == set(want)
        for key, value in want.items():
            np.testing.assert_allclose(np.array(got[key], np.float32), value, rtol=1e-6)
        # Row format: one instance per example; bare values when the signature has one input.
        n = len(next(iter(lists.values())))
        if len(lists) == 1:
            instances = next(iter(lists.values()))
        else:
            instances = [{k: v[i] for k, v in lists.items()} for i in range(n)]
        status, payload = _request(
            server,
            "POST",
            f"/v1/models/{name}:predict",
            {"signature_name": signature, "instances": instances},
        )
        assert status == 200, payload
        rows = payload["predictions"]
        assert len(rows) == n
        for key, value in want.items():
            column = [row[key] for row in rows] if len(want) > 1 else rows
            np.testing.assert_allclose(np.array(column, np.float32), value, rtol=1e-6)


def test_default_signature_is_generate(server, reference):
    status, payload = _request(server, "POST", "/v1/models/dpvae:predict", {"instances": [3, 8]})
    assert status == 200
    want = _expected(reference, "dpvae", "generate", {"seed": np.array([3, 8], np.int64)})
    np.testing.assert_allclose(np.array(payload["predictions"], np.float32), want["images"])


@pytest.mark.parametrize("row_format", [False, True])
def test_rest_client(server, reference, row_format):
    for name in MODELS:
        client = client_lib.RestClient(server["url"], name, row_format=row_format)
        feeds = _inputs(reference, name)

        def want(signature, output="images", _name=name, _feeds=feeds):
            return _expected(reference, _name, signature, _feeds[signature])[output]

        np.testing.assert_allclose(client.generate([3, 8]), want("generate"), rtol=1e-6)
        np.testing.assert_allclose(
            client.generate([3, 8], [0.5, 1.5]), want("generate_with_temperature"), rtol=1e-6
        )
        np.testing.assert_allclose(client.decode(feeds["decode"]["z"]), want("decode"))
        codes = client.encode(feeds["encode"]["images"])
        for key, value in codes.items():
            np.testing.assert_allclose(value, want("encode", key), rtol=1e-6)
        np.testing.assert_allclose(
            client.reconstruct(feeds["reconstruct"]["images"]), want("reconstruct"), rtol=1e-6
        )
        if name == "dpvae":
            np.testing.assert_allclose(
                client.decode_z0(feeds["decode_z0"]["z0"]), want("decode_z0")
            )
            assert set(codes) == {"z_mean", "z_log_var", "z0"}
        else:
            assert set(codes) == {"z_mean", "z_log_var"}
        with pytest.raises(client_lib.ServingError, match="must have shape") as e:
            client.decode(np.zeros((1, 3)))
        assert e.value.status == 400


BAD_REQUESTS = [
    # (method, path, body, status, part of the error message)
    ("POST", "/v1/models/dpvae:predict", '{"instances": [1, 2', 400, "JSON Parse error"),
    ("POST", "/v1/models/dpvae:predict", "", 400, "document is empty"),
    ("POST", "/v1/models/dpvae:predict", [1, 2], 400, "Is not object"),
    ("POST", "/v1/models/dpvae:predict", {}, 400, "Missing 'inputs' or 'instances' key"),
    ("POST", "/v1/models/dpvae:predict", {"instances": []}, 400, "No values"),
    ("POST", "/v1/models/dpvae:predict", {"instances": [1.5]}, 400, "expected type: int64"),
    ("POST", "/v1/models/dpvae:predict", {"instances": [True]}, 400, "expected type: int64"),
    ("POST", "/v1/models/dpvae:predict", {"instances": ["7"]}, 400, "expected type: int64"),
    ("POST", "/v1/models/dpvae:predict", {"instances": [1], "inputs": [1]}, 400, "only one of"),
    ("POST", "/v1/models/dpvae:predict", {"instances": [{"seed": 1}, 2]}, 400, "Expecting obj"),
    ("POST", "/v1/models/dpvae:predict", {"instances": [[1], [2]]}, 400, "must have shape [-1]"),
    ("POST", "/v1/models/dpvae:predict", {"signature_name": 3, "instances": [1]}, 400,
     "'signature_name' key must be a string"),
    ("POST", "/v1/models/dpvae:predict", {"signature_name": "sample", "instances": [1]}, 400,
     'signature name: "sample" not found'),
    ("POST", "/v1/models/dpvae:predict", {"inputs": {"seed": [1], "extra": [2]}}, 400,
     "Unknown named input(s): extra"),
    ("POST", "/v1/models/dpvae:predict", {"instances": [1, 2, 3, 4, 5]}, 400,
     f"at most {MAX_BATCH} per request"),
    ("POST", "/v1/models/dpvae:predict",
     {"signature_name": "generate_with_temperature", "instances": [1, 2]}, 400,
     "expecting list of objects"),
    ("POST", "/v1/models/dpvae:predict",
     {"signature_name": "generate_with_temperature", "inputs": {"seed": [1]}}, 400,
     "Missing named input: temperature"),
    ("POST", "/v1/models/dpvae:predict",
     {"signature_name": "generate_with_temperature", "inputs": {"seed": [1, 2],
      "temperature": [1.0]}}, 400, "one value per image"),
    ("POST", "/v1/models/dpvae:predict",
     {"signature_name": "decode", "inputs": {"z": [[0.1, 0.2, 0.3]]}}, 400,
     "must have shape [-1,2]"),
    ("POST", "/v1/models/dpvae:predict",
     {"signature_name": "decode", "inputs": {"z": [[0.1, 0.2], [0.3]]}}, 400,
     "unexpected size"),
    ("POST", "/v1/models/dpvae:predict",
     {"signature_name": "decode", "inputs": {"z": [[1e39, 0.0]]}}, 400, "loss of precision"),
    ("POST", "/v1/models/dpvae:predict",
     {"signature_name": "encode", "instances": [[[0.0] * 28] * 28]}, 400,
     "must have shape [-1,28,28,1]"),
    ("POST", "/v1/models/dpvae:classify", {"instances": [1]}, 400, "use :predict"),
    ("POST", "/v1/models/nope:predict", {"instances": [1]}, 404, "Servable not found"),
    ("POST", "/v1/models/dpvae/versions/7:predict", {"instances": [1]}, 404,
     "Specific(dpvae, 7)"),
    ("GET", "/v1/models/dpvae/versions/7", None, 404, "Specific(dpvae, 7)"),
    ("GET", "/v1/models/nope/metadata", None, 404, "Servable not found"),
    ("GET", "/v2/models/dpvae", None, 404, "Malformed request"),
]  # fmt: skip


def test_bad_requests_get_errors_and_the_server_keeps_serving(server, reference):
    host = server["url"].split("//", 1)[1]
    conn = http.client.HTTPConnection(host, timeout=120)  # one keep-alive connection for all
    good = {"instances": [3]}
    want = _expected(reference, "dpvae", "generate", {"seed": np.array([3], np.int64)})
    for method, path, body, status, message in BAD_REQUESTS:
        got_status, payload = _request(server, method, path, body, conn=conn)
        assert (got_status, list(payload)) == (status, ["error"]), (path, body, payload)
        assert message in payload["error"], (body, payload)
        # ... and the next good request on the same connection is answered.
        ok, answer = _request(server, "POST", "/v1/models/dpvae:predict", good, conn=conn)
        assert ok == 200, answer
    np.testing.assert_allclose(np.array(answer["predictions"], np.float32), want["images"])
    conn.close()


def test_concurrent_requests(server, reference):
    def generate(seed):
        return _request(server, "POST", "/v1/models/vae:predict", {"instances": [seed]})

    seeds = list(range(12))
    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(generate, seeds))
    sig = reference["vae"].signatures["generate"]
    for seed, (status, payload) in zip(seeds, results, strict=True):
        assert status == 200
        want = sig(seed=tf.constant([seed], tf.int64))["images"].numpy()
        np.testing.assert_allclose(np.array(payload["predictions"], np.float32), want, rtol=1e-6)


def test_grpc_with_official_stubs(server, reference):
    if not _grpc_available():
        # The documented behaviour without tensorflow-serving-api: a clear ImportError.
        with pytest.raises(ImportError):
            client_lib.GrpcClient("127.0.0.1:1", "dpvae")
        return
    assert server["grpc"] is not None
    grpc_client = client_lib.GrpcClient(server["grpc"], "dpvae")
    rest_client = client_lib.RestClient(server["url"], "dpvae")
    feeds = _inputs(reference, "dpvae")
    np.testing.assert_array_equal(grpc_client.generate([3, 8]), rest_client.generate([3, 8]))
    codes = grpc_client.encode(feeds["encode"]["images"])
    want = _expected(reference, "dpvae", "encode", feeds["encode"])
    assert set(codes) == set(want)
    for key, value in want.items():
        np.testing.assert_allclose(codes[key], value, rtol=1e-6)
    np.testing.assert_allclose(
        grpc_client.decode_z0(feeds["decode_z0"]["z0"]),
        _expected(reference, "dpvae", "decode_z0", feeds["decode_z0"])["images"],
    )
    assert set(grpc_client.metadata().signature_def) == set(reference["dpvae"].signatures)
    assert [s.version for s in grpc_client.status().model_version_status] == [1]
    with pytest.raises(client_lib.ServingError, match="must have shape") as e:
        grpc_client.decode(np.zeros((1, 3), np.float32))
    assert e.value.status == "INVALID_ARGUMENT"
    with pytest.raises(client_lib.ServingError) as e:
        client_lib.GrpcClient(server["grpc"], "nope").generate([1])
    assert e.value.status == "NOT_FOUND"
    with pytest.raises(client_lib.ServingError, match="at most") as e:
        grpc_client.generate(list(range(MAX_BATCH + 1)))
    grpc_client.close()
