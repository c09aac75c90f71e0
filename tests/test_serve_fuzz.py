"""The dev server (tfvae.serve) under hostile clients: never a 5xx, bounded work, no stall.

A tiny SavedModel (TF Serving's signature shapes, no training) is served in-process on an
ephemeral port. Hypothesis sends arbitrary JSON and arbitrary bytes; hand-written cases send
what broke the server before (JSON nested 100,000 deep, ``instances`` nested 100 deep, integers
of 5,000 digits, a million seeds), every HTTP method, broken headers, a client that stalls or
hangs up mid-body; 16 clients then load it for a few seconds. Every answer is a 4xx with TF
Serving's ``{"error": ...}`` body and no Python exception text, or a 200.
"""

import concurrent.futures
import http.client
import json
import re
import socket
import threading
import time
import urllib.parse

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tfvae import serve

MAX_BATCH = 8
TIMEOUT = 1.0
PREDICT = "/v1/models/tiny:predict"
# What a Python exception looks like in a message (a class name such as ValueError, a
# traceback): none may reach a client. TF Serving's own "Error: JSON Value ..." may.
PYTHON_TEXT = re.compile(r"Traceback|File \"|\b[A-Z]\w*(Error|Exception)\b|<class ")


class Tiny(tf.Module):
    """TF Serving-shaped signatures: generate (int64 seeds), decode (float32 [B, 2]), and two
    inputs with one row per example each."""

    def __init__(self):
        super().__init__()
        self.w = tf.Variable([[1.0, 2.0], [3.0, 4.0]])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int64, name="seed")])
    def generate(self, seed):
        return {"images": tf.cast(seed, tf.float32)[:, None] * tf.ones([1, 2])}

    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="z")])
    def decode(self, z):
        return {"images": z @ self.w}

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.int64, name="seed"),
            tf.TensorSpec([None], tf.float32, name="temperature"),
        ]
    )
    def generate_with_temperature(self, seed, temperature):
        return {"images": tf.cast(seed, tf.float32) * temperature}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz") / "models"
    module = Tiny()
    signatures = {
        "serving_default": module.generate,
        "generate": module.generate,
        "decode": module.decode,
        "generate_with_temperature": module.generate_with_temperature,
    }
    tf.saved_model.save(module, str(root / "tiny" / "1"), signatures=signatures)
    store = serve.ModelStore(str(root))
    httpd = serve.make_server(
        store, port=0, max_batch=MAX_BATCH, request_timeout=TIMEOUT, max_connections=48
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield {"host": "127.0.0.1", "port": httpd.server_port, "httpd": httpd}
    httpd.shutdown()
    httpd.server_close()


def _request(server, method, path, body=None, headers=None, timeout=10):
    conn = http.client.HTTPConnection(server["host"], server["port"], timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _raw(server, data: bytes, timeout=5) -> bytes:
    """Sends raw bytes, returns everything the server answers before closing."""
    with socket.create_connection((server["host"], server["port"]), timeout=timeout) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


def _check_refusal(status: int, body: bytes):
    """A 2xx, or a 4xx whose body is TF Serving's {"error": "..."} without Python's text."""
    assert status < 500, (status, body[:300])
    if status >= 400:
        payload = json.loads(body)
        assert list(payload) == ["error"] and isinstance(payload["error"], str), payload
        assert not PYTHON_TEXT.search(payload["error"]), payload


def _status_line(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["seed", "z", "temperature", "b64", "instances", "inputs", "x"])
            | st.text(max_size=4),
            children,
            max_size=3,
        )
    ),
    max_leaves=24,
)
signatures = st.sampled_from(
    ["serving_default", "generate", "decode", "generate_with_temperature", "nope", 3, None]
)
requests = st.one_of(
    json_values,
    st.builds(lambda v: {"instances": v}, json_values),
    st.builds(lambda v: {"inputs": v}, json_values),
    st.builds(lambda s, v: {"signature_name": s, "instances": v}, signatures, json_values),
    st.builds(lambda s, v: {"signature_name": s, "inputs": v}, signatures, json_values),
)
paths = st.sampled_from(
    [
        PREDICT,
        "/v1/models/tiny/versions/1:predict",
        "/v1/models/tiny:classify",
        "/v1/models/x:predict",
    ]
)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


@FUZZ
@given(body=requests, path=paths)
def test_arbitrary_json_never_gets_a_5xx(server, body, path):
    _check_refusal(*_request(server, "POST", path, json.dumps(body)))


@FUZZ
@given(body=st.binary(max_size=300), path=paths | st.text(max_size=30).map(lambda t: "/" + t))
def test_arbitrary_bytes_never_get_a_5xx(server, body, path):
    path = urllib.parse.quote(path, safe="/:")
    _check_refusal(*_request(server, "POST", path, body))


@FUZZ
@given(data=st.binary(max_size=200))
def test_arbitrary_bytes_on_the_wire_never_get_a_5xx(server, data):
    answer = _raw(server, data)
    for line in answer.split(b"\r\n"):
        if line.startswith(b"HTTP/1."):
            assert not line.split(b" ")[1].startswith(b"5"), answer[:300]


HOSTILE = [
    # (what, body, expected status)
    ("JSON nested 100,000 deep", b"[" * 100_000 + b"]" * 100_000, 400),
    ("instances nested 100 deep", json.dumps({"instances": [[0] * 1] * 1}).replace(
        "[[0]]", "[" * 100 + "0" + "]" * 100).encode(), 400),
    ("an integer of 5,000 digits", b'{"instances": [' + b"9" * 5000 + b"]}", 400),
    ("an integer beyond int64", json.dumps({"instances": [2**70]}).encode(), 400),
    ("a float input of 10^400", json.dumps(
        {"signature_name": "decode", "instances": [[10**400, 0]]}).encode(), 400),
    ("a million seeds", json.dumps({"instances": list(range(10**6))}).encode(), 413),
    ("too many rows, small", json.dumps({"instances": [1] * (MAX_BATCH + 1)}).encode(), 400),
    ("too many columns", json.dumps({"inputs": {"seed": [1] * (MAX_BATCH + 1)}}).encode(), 400),
    ("not UTF-8", b'{"instances": ["\xff\xfe"]}', 400),
    ("NaN for an int", b'{"instances": [NaN]}', 400),
]  # fmt: skip


@pytest.mark.parametrize("what, body, status", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_bodies_are_refused_quickly(server, what, body, status):
    start = time.monotonic()
    got, answer = _request(server, "POST", PREDICT, body)
    assert time.monotonic() - start < 2.0, what  # refused before any expensive work
    assert got == status, (what, answer[:300])
    _check_refusal(got, answer)


@pytest.mark.parametrize("method", ["PUT", "DELETE", "OPTIONS", "PATCH", "FOO"])
def test_other_methods_get_a_json_405(server, method):
    status, body = _request(server, method, PREDICT, b"{}")
    assert status == 405 and "is not served" in json.loads(body)["error"]


def test_head_gets_405_without_a_body(server):
    conn = http.client.HTTPConnection(server["host"], server["port"], timeout=10)
    conn.request("HEAD", PREDICT)
    response = conn.getresponse()
    assert response.status == 405 and response.read() == b""
    conn.close()


@pytest.mark.parametrize(
    "request_bytes, status",
    [
        (b"POST " + PREDICT.encode() + b" HTTP/1.1\r\nContent-Length: -5\r\n\r\n", 400),
        (b"POST " + PREDICT.encode() + b" HTTP/1.1\r\nContent-Length: 1e9\r\n\r\n", 400),
        (b"POST " + PREDICT.encode() + b" HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n", 413),
        (
            b"POST "
            + PREDICT.encode()
            + b" HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            411,
        ),
        (b"GET /v1/models/tiny/versions/" + b"9" * 5000 + b" HTTP/1.1\r\n\r\n", 404),
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", 414),
        (b"GET / HTTP/9.9\r\n\r\n", 400),
        (b"\x00\x01\x02 garbage\r\n\r\n", 400),
    ],
)
def test_broken_requests_get_4xx(server, request_bytes, status):
    answer = _raw(server, request_bytes)
    assert _status_line(answer) == status, answer[:300]
    _check_refusal(status, answer.split(b"\r\n\r\n", 1)[1])


def _good(server) -> float:
    start = time.monotonic()
    status, body = _request(server, "POST", PREDICT, json.dumps({"instances": [3, 4]}))
    assert status == 200 and json.loads(body) == {"predictions": [[3.0, 3.0], [4.0, 4.0]]}
    return time.monotonic() - start


def test_a_stalled_or_vanishing_client_holds_nothing(server, capfd):
    # A body that never arrives: 408 after the timeout, and other clients are answered meanwhile.
    stalled = socket.create_connection((server["host"], server["port"]), timeout=10)
    stalled.sendall(b"POST " + PREDICT.encode() + b" HTTP/1.1\r\nContent-Length: 1000\r\n\r\n{")
    # A client that hangs up half-way through its body.
    gone = socket.create_connection((server["host"], server["port"]), timeout=10)
    gone.sendall(b"POST " + PREDICT.encode() + b" HTTP/1.1\r\nContent-Length: 1000\r\n\r\n[1")
    gone.close()
    assert max(_good(server) for _ in range(5)) < 1.0
    start = time.monotonic()
    answer = stalled.recv(65536)
    waited = time.monotonic() - start
    # The 408 closes the connection; its body may come in a later segment than its headers.
    while chunk := stalled.recv(65536):
        answer += chunk
    stalled.close()
    assert _status_line(answer) == 408 and waited < TIMEOUT + 1.0, answer
    _check_refusal(408, answer.split(b"\r\n\r\n", 1)[1])
    # An idle connection that never sends a request line is closed after the timeout too.
    idle = socket.create_connection((server["host"], server["port"]), timeout=10)
    time.sleep(TIMEOUT + 0.5)
    assert idle.recv(100) == b""
    idle.close()
    assert "Traceback" not in capfd.readouterr().err


def test_sixteen_clients_get_answers_without_errors(server):
    """16 clients for 3 s, each on its own keep-alive connection; reports the latency."""
    stop = time.monotonic() + 3.0
    body = json.dumps({"instances": list(range(MAX_BATCH))})

    def client(index):
        conn = http.client.HTTPConnection(server["host"], server["port"], timeout=10)
        latencies, errors = [], 0
        while time.monotonic() < stop:
            start = time.monotonic()
            conn.request("POST", PREDICT, body=body)
            response = conn.getresponse()
            payload = response.read()
            latencies.append(time.monotonic() - start)
            if response.status != 200 or len(json.loads(payload)["predictions"]) != MAX_BATCH:
                errors += 1
        conn.close()
        return latencies, errors

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = list(pool.map(client, range(16)))
    latencies = np.concatenate([r[0] for r in results])
    assert sum(r[1] for r in results) == 0
    assert all(len(r[0]) > 0 for r in results)  # every client was answered
    p50, p99 = np.percentile(latencies, [50, 99]) * 1000
    print(f"load: {len(latencies)} requests, p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    assert p99 < 1000
