"""Tests for tfvae.serve and tools.client: real requests to a server on 127.0.0.1.

The server runs as its own process on an ephemeral port, serving the smoke-trained dpVAE and
VAE exports of ``tests/test_export.py`` (trained once per session). Every signature answers
over REST in both JSON formats, as TF Serving's wire format prescribes, with the SavedModel's
own outputs; malformed requests get 400/404 with an ``error`` message on the same keep-alive
connection, and the server keeps serving. gRPC is checked through the official
``tensorflow-serving-api`` stubs (a test dependency). The examples of ``export/README.md`` run
as written against the server, and so do the ``tools.client`` and ``tfvae.serve`` commands.
"""

import concurrent.futures
import http.client
import json
import os
import re
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
# The dev server's answer to generate_with_temperature with 2 seeds and 1 temperature.
MISMATCH = "seed has 2 values and temperature 1: give one temperature per seed."
MODELS = ("dpvae", "vae")
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": REPO}

# Runs ``python -m tfvae.serve`` and reports, once the models are loaded, whether any tfvae
# module besides tfvae.serve (or TFP) was imported.
SERVER = textwrap.dedent(
    """
    import sys
    from tfvae import cli
    import tfvae.serve as serve

    make_server = serve.make_server

    def reporting_make_server(*args, **kwargs):
        roots = ("tfvae", "tensorflow_probability")
        extra = sorted(
            m for m in sys.modules
            if m.split(".")[0] in roots
            and m not in ("tfvae", "tfvae.serve", "tfvae.serving", "tfvae.cli", "tfvae.errors")
        )
        print("IMPORTED", extra, flush=True)
        return make_server(*args, **kwargs)

    serve.make_server = reporting_make_server
    serve._define_flags()
    cli.run(serve.main)
    """
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The running dev server: base URL, gRPC target (or None), what it imported."""
    models, _ = export_smoke_models(smoke_root(tmp_path_factory))
    log = tmp_path_factory.mktemp("serve") / "server.log"
    cmd = [sys.executable, "-c", SERVER, f"--model_base_path={models}", "--port=0"]
    cmd += [f"--max_batch={MAX_BATCH}", "--grpc_port=0"]
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
    info["grpc"] = next(x for x in lines if x.startswith("gRPC on ")).split(" on ", 1)[1]
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


@pytest.mark.slow
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
      "temperature": [1.0]}}, 400, MISMATCH),
    ("POST", "/v1/models/dpvae:predict", {"inputs": {"seed": ["7"]}}, 400,
     "Failed to process input: seed of 'inputs'. Error: JSON Value: \"7\" Type: String is not of "
     "expected type: int64"),
    ("POST", "/v1/models/dpvae:predict", {"inputs": [0.5]}, 400,
     "Failed to process input: seed of 'inputs'. Error: JSON Value: 0.5 Type: Number"),
    ("POST", "/v1/models/dpvae:predict",
     {"signature_name": "decode", "inputs": {"z": [[0.0, "a"]]}}, 400,
     "Failed to process input: z of 'inputs'"),
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
    # tensorflow-serving-api is a test dependency (pyproject's [test] extra): no fallback.
    from tensorflow_serving.apis import prediction_service_pb2_grpc  # noqa: F401

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
    with pytest.raises(client_lib.ServingError) as e:
        grpc_client.predict(
            "generate_with_temperature",
            {"seed": np.array([1, 2], np.int64), "temperature": np.array([1.0], np.float32)},
        )
    assert e.value.status == "INVALID_ARGUMENT"
    assert e.value.message == MISMATCH
    grpc_client.close()


# ----------------------------------------------------------------------------------------------
# export/README.md: its examples, run against the dev server
# ----------------------------------------------------------------------------------------------
README = os.path.join(REPO, "export", "README.md")

# Stands in for curl when the README's shell examples run: it does what curl does with the
# options the README uses (a GET, or with -d a POST of the literal body, of a file (@path, newlines
# removed as curl does) or of stdin (@-)), refuses any other option, prints the response body
# and logs {url, body, status, response} to $CURL_LOG.
FAKE_CURL = textwrap.dedent(
    """
    import json, os, sys, urllib.error, urllib.request

    args, body, url = sys.argv[1:], None, None
    while args:
        arg = args.pop(0)
        if arg in ("-d", "--data"):
            body = args.pop(0)
            if body.startswith("@"):
                with (sys.stdin if body == "@-" else open(body[1:])) as f:
                    body = f.read().replace("\\r", "").replace("\\n", "")
        elif arg.startswith("-") or url is not None:
            sys.exit(f"curl stand-in: unsupported argument {arg!r}")
        else:
            url = arg
    request = urllib.request.Request(url, data=None if body is None else body.encode())
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    print(text)
    with open(os.environ["CURL_LOG"], "a") as log:
        log.write(json.dumps({"url": url, "body": body, "status": status,
                              "response": json.loads(text)}) + "\\n")
    """
)


def _readme_section(title: str) -> str:
    with open(README) as f:
        text = f.read()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else len(text)]


def _code_blocks(section: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.S)


def _readme_signatures() -> dict:
    """The README's signature table: name -> (input names, output names) for a decoupled
    prior and a stochastic encoder (the served dpvae)."""
    table = {}
    for line in _readme_section("Exporting").splitlines():
        if not line.startswith("| `"):
            continue
        name, inputs, outputs = (cell.strip() for cell in line.strip("|").split("|"))
        outputs = outputs.split("(")[0]  # "(deterministic encoders: ...)" is another model
        table[re.findall(r"`(\w+)`", name)[0]] = (
            set(re.findall(r"`(\w+)`", inputs)),
            set(re.findall(r"`(\w+)`", outputs)),
        )
    return table


def _run_readme_shell(block: str, server, tmp_path) -> list[dict]:
    """Runs a README shell block with $H on the dev server; returns the logged requests."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "curl").write_text(f"#!{sys.executable}\n{FAKE_CURL}")
    (bin_dir / "curl").chmod(0o755)
    if not (bin_dir / "python").exists():
        (bin_dir / "python").symlink_to(sys.executable)
    [h] = re.findall(r"`H=(http://localhost:8501/v1/models/\w+)`", _readme_section("REST"))
    h = h.replace("http://localhost:8501", server["url"])
    log = tmp_path / f"curl-{len(list(tmp_path.glob('curl-*')))}.jsonl"
    script = f"set -euo pipefail\nH={h}\n" + block.replace("/tmp/", f"{tmp_path}/")
    env = {**ENV, "PATH": f"{bin_dir}{os.pathsep}{ENV['PATH']}", "CURL_LOG": str(log)}
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_readme_signature_table_matches_the_export(server):
    status, payload = _request(server, "GET", "/v1/models/dpvae/metadata")
    assert status == 200
    defs = payload["metadata"]["signature_def"]["signature_def"]
    served = {k: (set(v["inputs"]), set(v["outputs"])) for k, v in defs.items()}
    assert served.pop("serving_default") == served["generate"]
    assert _readme_signatures() == served


def test_readme_rest_examples_answer_as_documented(server, tmp_path):
    """Every curl command of export/README.md's REST section, sent as written to the dev
    server: 200 with the documented outputs, every signature covered; the documented bad
    request gets the documented 400."""
    examples, bad = _code_blocks(_readme_section("REST"), "bash")
    table = _readme_signatures()
    requests = _run_readme_shell(examples, server, tmp_path)
    assert [r["status"] for r in requests] == [200] * len(requests), requests
    assert requests[0]["body"] is None and "model_version_status" in requests[0]["response"]
    assert requests[1]["url"].endswith("/metadata") and "metadata" in requests[1]["response"]
    covered = set()
    for r in requests[2:]:
        body = json.loads(r["body"])
        signature = body.get("signature_name", "generate")
        covered.add(signature)
        outputs = table[signature][1]
        rows = "instances" in body
        answer = r["response"]["predictions" if rows else "outputs"]
        n = len(body["instances"]) if rows else len(next(iter(body["inputs"].values())))
        if len(outputs) > 1:  # several outputs: named (an object per row, or one object)
            if rows:
                assert [set(row) for row in answer] == [outputs] * n, r
            else:
                assert set(answer) == outputs, r
                assert {len(v) for v in answer.values()} == {n}, r
        else:  # one output: its value bare
            assert np.asarray(answer).shape[:1] == (n,), r
    assert covered == set(table), f"no REST example for {set(table) - covered}"

    [request] = _run_readme_shell(bad, server, tmp_path)
    documented = re.search(r"# dev server: (\{.*\})", bad)[1]
    assert (request["status"], request["response"]) == (400, json.loads(documented))


def test_readme_python_examples_run(server):
    """The Python client and raw gRPC stub examples of export/README.md, run as written
    against the dev server."""
    local = {"http://localhost:8501": server["url"], "localhost:8500": server["grpc"]}

    def run(title):
        [block] = _code_blocks(_readme_section(title), "python")
        for documented, here in local.items():
            block = block.replace(documented, here)
        scope = {}
        exec(compile(block, f"export/README.md ({title})", "exec"), scope)
        return scope

    client = run("Python client (REST and gRPC)")
    assert client["images"].shape == (3, 28, 28, 1)
    assert set(client["codes"]) == {"z_mean", "z_log_var", "z0"}
    for key in ("warm", "same", "also", "recon"):
        assert client[key].shape[1:] == (28, 28, 1), key
    raw = run("gRPC")
    np.testing.assert_array_equal(raw["images"], client["images"])
    assert set(raw["codes"]) == {"z_mean", "z_log_var", "z0"}
    for key in ("warm", "decoded", "decoded_z0", "recon"):
        assert raw[key].shape[1:] == (28, 28, 1), key


# ----------------------------------------------------------------------------------------------
# Command lines: tools.client against the dev server, tfvae.serve's own errors
# ----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_client_command_line(server, reference, tmp_path):
    """``python -m tools.client`` over REST and gRPC writes the PNG grid of the samples; a
    refused request ends in one ``error:`` line with status 2, as does a bad server flag."""
    client = [sys.executable, "-m", "tools.client", "--model=dpvae", "--seeds=3,8,5"]
    commands = {
        "rest": [*client, f"--url={server['url']}", f"--out={tmp_path / 'rest.png'}"],
        "grpc": [*client, f"--grpc={server['grpc']}", "--temperature=0.5",
                 f"--out={tmp_path / 'grpc.png'}"],
        "unknown_model": [*client[:3], "--model=nope", f"--url={server['url']}"],
        "serve_missing": [sys.executable, "-m", "tfvae.serve",
                          f"--model_base_path={tmp_path / 'nothing'}"],
    }  # fmt: skip
    procs = {
        k: subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
        for k, c in commands.items()
    }
    done = {k: (*p.communicate(timeout=600), p.returncode) for k, p in procs.items()}
    from PIL import Image

    seeds = tf.constant([3, 8, 5], tf.int64)
    sigs = reference["dpvae"].signatures
    want = {
        "rest": sigs["generate"](seed=seeds)["images"].numpy(),
        "grpc": sigs["generate_with_temperature"](seed=seeds, temperature=tf.constant([0.5] * 3))[
            "images"
        ].numpy(),
    }
    for key, images in want.items():
        stdout, stderr, code = done[key]
        assert code == 0, stderr[-3000:]
        assert "generate: (3, 28, 28, 1) float32" in stdout
        for code in ("z0", "z_log_var", "z_mean"):
            assert f"'{code}': (3, 2)" in stdout.split("encode: ")[1].splitlines()[0], stdout
        # Three samples tile a 2 x 2 grid, the fourth cell black.
        grid = np.zeros((56, 56), np.float32)
        for i, image in enumerate(images):
            r, c = divmod(i, 2)
            grid[r * 28 : (r + 1) * 28, c * 28 : (c + 1) * 28] = image[..., 0]
        png = np.asarray(Image.open(tmp_path / f"{key}.png"))
        assert png.shape == (56, 56) and png.dtype == np.uint8
        # tools.client.save_grid's 8-bit encoding of [0, 1] (the smoke models' Gaussian means
        # stray outside it).
        np.testing.assert_array_equal(png, np.round(np.clip(grid, 0, 1) * 255), err_msg=key)
    assert np.abs(want["rest"] - want["grpc"]).max() > 1e-3  # the temperature reached gRPC
    for key, message in (
        ("unknown_model", "refused the request: 404: Servable not found"),
        ("serve_missing", "is not a folder"),
    ):
        _, stderr, code = done[key]
        assert code == 2 and "Traceback" not in stderr, stderr[-3000:]
        last = stderr.strip().splitlines()[-1]
        assert last.startswith("error: ") and message in last, stderr[-3000:]
