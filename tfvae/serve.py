"""A development server that speaks TensorFlow Serving's REST API (and its gRPC API).

    python -m tfvae.serve --model_base_path=export/models            # http://127.0.0.1:8501
    python -m tfvae.serve --model_base_path=export/models --port=0 --grpc_port=8500

Serves every model folder ``<model_base_path>/<name>/<N>/`` written by ``tfvae.export`` (or, if
``--model_base_path`` is itself one model's folder, that model under ``--model_name``), every
version, the way ``tensorflow_model_server --model_config_file=models.config`` does with the
exported ``models.config``. A client written against this server works unchanged against TF
Serving (``export/README.md`` runs the official image):

    GET  /v1/models/<name>[/versions/<N>]               version status
    GET  /v1/models/<name>[/versions/<N>]/metadata      signature defs
    POST /v1/models/<name>[/versions/<N>]:predict       {"signature_name": ..., "instances": [...]}
                                                        or {"inputs": {...}} (columnar)

Requests are parsed by TF Serving's JSON rules (row format: ``instances`` is a list of one
value per example, or of objects with every named input; columnar: ``inputs`` is a value or an
object of named inputs; the response is ``predictions`` or ``outputs`` accordingly). A malformed
request (bad JSON, unknown signature or input, wrong dtype or shape, more than
``--max_batch`` examples) gets HTTP 400 with ``{"error": "<message>"}``; an unknown model or
version gets 404; the server keeps serving. The dev server is stricter than TF Serving in one
way: a columnar request naming an input the signature lacks is rejected, not silently ignored.

Nothing a client sends gets a 5xx: every refusal is a 4xx with TF Serving's ``{"error": ...}``
body and no Python exception text. A body over ``--max_body_bytes`` (by default room for
``--max_batch`` of the largest example any signature takes) is refused from its
Content-Length, unread (413); the example count is checked as soon as the JSON is parsed,
before any value is converted; a body not received within ``--request_timeout`` seconds ends
the connection (408); PUT, DELETE, HEAD, OPTIONS and unknown methods get 405. At most
``--max_connections`` connections are served at once (more get 429) and at most
``PARSE_WORKERS`` bodies over ``SMALL_BODY_BYTES`` are parsed and run at once (small ones never
wait behind them), so memory stays bounded by about ``max_connections x max_body_bytes`` plus
what those workers parse.

With ``--grpc_port`` (needs the ``tensorflow-serving-api`` package) it also answers
``PredictionService.Predict``/``GetModelMetadata`` and ``ModelService.GetModelStatus``.

Models are loaded with ``tf.saved_model.load`` only: this module imports no tfvae model code,
so it serves any SavedModel with predict signatures.
"""

import contextlib
import json
import math
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import tensorflow as tf
from absl import flags, logging

from tfvae import cli
from tfvae.serving import (
    DEFAULT_MAX_BATCH,
    DEFAULT_SIGNATURE,
    ModelStore,
    Servable,
    ServingError,
    _bad,
    format_predict_response,
    parse_predict_request,
)

__all__ = [
    "DEFAULT_MAX_BATCH",
    "DEFAULT_SIGNATURE",
    "ModelStore",
    "Servable",
    "ServingError",
    "default_max_body_bytes",
    "make_grpc_server",
    "make_server",
]

# A predict body's size per value of its largest input (a JSON float written in full, its comma
# and brackets), and per example (an object's keys in the row format): the default body bound.
BODY_BYTES_PER_VALUE = 32
BODY_BYTES_PER_EXAMPLE = 256
MIN_BODY_BYTES = 1 << 20
MAX_BODY_BYTES = 64 << 20  # the largest --max_body_bytes default, whatever the models take
DEFAULT_REQUEST_TIMEOUT = 30.0
DEFAULT_MAX_CONNECTIONS = 64
PARSE_WORKERS = 4
SMALL_BODY_BYTES = 64 << 10  # parsed without waiting for one of the PARSE_WORKERS slots
# TF Serving's URL grammar for models (http_rest_api_handler.cc).
_MODEL_URL = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[0-9]{1,18})|/labels/(?P<label>[^/:]+))?"
    r"(?P<suffix>/metadata|:[A-Za-z]+)?$"
)


# ----------------------------------------------------------------------------------------------
# HTTP
# ----------------------------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    """TF Serving's REST API; subclass it to add routes (``make_server(handler=...)``).

    Class attributes set by ``make_server``: ``store``, ``max_batch``, ``max_body_bytes``,
    ``timeout`` (seconds to receive a request line, headers or body) and ``parse_slots`` (a
    semaphore bounding how many bodies are parsed and run at once).
    """

    protocol_version = "HTTP/1.1"
    server_version = "tfvae-serve"
    store: ModelStore
    max_batch: int
    max_body_bytes: int = MAX_BODY_BYTES
    timeout = DEFAULT_REQUEST_TIMEOUT
    parse_slots = threading.BoundedSemaphore(PARSE_WORKERS)

    def log_message(self, format, *args):
        logging.info("%s %s", self.address_string(), format % args)

    def _reply(self, status: int, payload: dict, *, body: bool = True):
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if status == 405:
                self.send_header("Allow", "GET, POST")
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if body:
                self.wfile.write(data)
            self.wfile.flush()
        except OSError:  # the client went away: nothing to answer, nothing to log
            self.close_connection = True

    def send_error(self, code, message=None, explain=None):
        """http.server's own refusals (a bad request line, headers too long, an unknown method)
        as TF Serving's JSON error; never a 5xx, which would blame the server."""
        if code >= 500:
            code = 405 if code == 501 else 400
        if code == 405:
            message = f"Method {self.command!r} is not served: use GET or POST."
        self.close_connection = True
        if self.request_version == "HTTP/0.9":  # a request line that did not parse
            self.request_version = "HTTP/1.0"  # a status line and headers, not bare JSON
        payload = {"error": message or self.responses.get(code, ("Bad request",))[0]}
        # A request line that failed to parse has no command; HEAD wants headers only.
        self._reply(code, payload, body=getattr(self, "command", None) != "HEAD")

    def _read_body(self) -> bytes:
        if "Transfer-Encoding" in self.headers:
            self.close_connection = True  # the body stays unread
            raise ServingError(411, "Send the body with a Content-Length header, not chunked.")
        length = self.headers.get("Content-Length", "0").strip()
        if not (length.isascii() and length.isdigit() and len(length) <= 18):
            self.close_connection = True
            raise _bad(f"Bad Content-Length header {length[:40]!r}.")
        size = int(length)
        if size > self.max_body_bytes:
            self.close_connection = True
            self._unread = size  # discarded after the answer, so the client gets to read it
            raise self._too_large(size)
        # The whole body within ``timeout``: a client sending a byte at a time cannot hold
        # this thread longer than that.
        deadline = time.monotonic() + self.timeout
        chunks, received = [], 0
        try:
            while received < size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                self.connection.settimeout(remaining)
                chunk = self.rfile.read1(min(size - received, 1 << 20))
                if not chunk:
                    break
                chunks.append(chunk)
                received += len(chunk)
        except TimeoutError:
            self.close_connection = True
            raise ServingError(
                408, f"Request body not received within {self.timeout:g} s (--request_timeout)."
            ) from None
        finally:
            self.connection.settimeout(self.timeout)
        if received < size:
            self.close_connection = True
            raise _bad(f"Request body ended after {received} of {size} bytes.")
        return b"".join(chunks)

    _unread = 0

    def _too_large(self, size: int) -> ServingError:
        return ServingError(
            413,
            f"Request body of {size} bytes is over this server's {self.max_body_bytes} "
            "(--max_body_bytes); split the request.",
        )

    def handle_expect_100(self):
        """``Expect: 100-continue`` (curl's large uploads): refuse a body that is too large
        before the client sends it."""
        length = self.headers.get("Content-Length", "0").strip()
        if length.isascii() and length.isdigit() and int(length) > self.max_body_bytes:
            self.close_connection = True
            error = self._too_large(int(length))
            self._reply(error.status, {"error": error.message})
            return False
        return super().handle_expect_100()

    def _discard_body(self):
        """Reads and drops what is left of a refused body, for at most ``timeout`` seconds and
        in small pieces: closing with unread data would reset the connection and lose the
        answer on its way to the client."""
        deadline, left = time.monotonic() + min(self.timeout, 5.0), self._unread
        self._unread = 0
        try:
            while left > 0 and time.monotonic() < deadline:
                self.connection.settimeout(max(deadline - time.monotonic(), 0.001))
                chunk = self.rfile.read1(min(left, 1 << 16))
                if not chunk:
                    break
                left -= len(chunk)
        except OSError:
            pass

    def _route(self, method: str):
        # Read the whole body first, so a keep-alive connection stays in step on any error.
        body = self._read_body() if method == "POST" else b""
        path = self.path.split("?", 1)[0]
        match = _MODEL_URL.match(path)
        if not match:
            raise ServingError(404, f"Malformed request: {method} {path[:200]}")
        name, suffix = match["name"], match["suffix"]
        version = int(match["version"]) if match["version"] else None
        if match["label"]:
            raise ServingError(
                404,
                f"Version label {match['label']!r} is not configured; the dev server serves "
                f"versions by number: /v1/models/{name}/versions/<N>.",
            )
        if method == "GET" and suffix is None:
            return self.store.status(name, version)
        if method == "GET" and suffix == "/metadata":
            return self.store.get(name, version).metadata()
        if method == "POST" and suffix == ":predict":
            servable = self.store.get(name, version)
            # Large bodies queue for a parse slot (their parsed JSON is what costs memory);
            # small ones never wait behind them.
            slot = self.parse_slots if len(body) > SMALL_BODY_BYTES else contextlib.nullcontext()
            with slot:
                signature, arrays, fmt = parse_predict_request(
                    body, servable, max_batch=self.max_batch
                )
                outputs = servable.run(signature, arrays, max_batch=self.max_batch)
                return format_predict_response(outputs, fmt)
        if method == "POST" and suffix in (":classify", ":regress"):
            raise _bad(
                f"{suffix[1:]} is not served: the exported signatures are predict signatures; "
                "use :predict."
            )
        raise ServingError(404, f"Malformed request: {method} {path[:200]}")

    def _handle(self, method: str):
        try:
            status, payload = 200, self._route(method)
        except ServingError as e:
            status, payload = e.status, {"error": e.message}
        except (RecursionError, MemoryError):
            status, payload = 400, {"error": "Request too large or nested too deep to process."}
        except Exception:  # the server keeps serving whatever one request does
            logging.exception("Request %s %s failed.", method, self.path[:200])
            status, payload = 500, {"error": "Internal error; the server log has the details."}
        self._reply(status, payload)
        if self._unread:
            self._discard_body()

    def _not_allowed(self):
        self.send_error(405)

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    do_PUT = do_DELETE = do_HEAD = do_OPTIONS = do_PATCH = _not_allowed


class _Server(ThreadingHTTPServer):
    """One thread per connection, at most ``max_connections`` at once; a client that hangs up
    or times out is one log line, not a traceback."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address, handler, *, max_connections: int):
        self.connection_slots = threading.BoundedSemaphore(max_connections)
        super().__init__(address, handler)

    def process_request(self, request, client_address):
        if not self.connection_slots.acquire(blocking=False):
            body = json.dumps({"error": "Too many connections; retry shortly."}).encode()
            try:
                request.settimeout(1.0)
                request.sendall(
                    b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n"
                    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
                )
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.connection_slots.release()

    def handle_error(self, request, client_address):
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            logging.info("%s: connection ended (%s).", client_address[0], type(error).__name__)
            return
        logging.exception("Connection from %s failed.", client_address[0])


def default_max_body_bytes(store: ModelStore, max_batch: int) -> int:
    """Room for ``max_batch`` examples of the largest input any signature takes, in JSON."""
    largest = 1
    for versions in store.models.values():
        for servable in versions.values():
            for specs in servable.inputs.values():
                for spec in specs.values():
                    dims = spec.shape.as_list()[1:] if spec.shape.rank else []
                    values = math.prod(d or 1 for d in dims)
                    largest = max(largest, values * BODY_BYTES_PER_VALUE + BODY_BYTES_PER_EXAMPLE)
    return min(max(MIN_BODY_BYTES, largest * max_batch), MAX_BODY_BYTES)


def make_server(
    store: ModelStore,
    host: str = "127.0.0.1",
    port: int = 8501,
    *,
    max_batch: int = DEFAULT_MAX_BATCH,
    max_body_bytes: int | None = None,
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    handler: type = _Handler,
) -> ThreadingHTTPServer:
    """A threaded HTTP server for ``store`` (port 0: any free port, see ``server_port``).

    Call ``serve_forever()`` (e.g. in a thread) and ``shutdown()``; each connection runs in its
    own thread. ``max_body_bytes=None``: ``default_max_body_bytes(store, max_batch)``.
    ``handler``: ``_Handler`` or a subclass of it.
    """
    if max_body_bytes is None:
        max_body_bytes = default_max_body_bytes(store, max_batch)
    attributes = {
        "store": store,
        "max_batch": int(max_batch),
        "max_body_bytes": int(max_body_bytes),
        "timeout": float(request_timeout),
        "parse_slots": threading.BoundedSemaphore(PARSE_WORKERS),
    }
    bound = type("Handler", (handler,), attributes)
    return _Server((host, port), bound, max_connections=int(max_connections))


# ----------------------------------------------------------------------------------------------
# gRPC (optional: tensorflow-serving-api)
# ----------------------------------------------------------------------------------------------
_HTTP_TO_GRPC = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 413: "RESOURCE_EXHAUSTED"}


def make_grpc_server(
    store: ModelStore,
    host: str = "127.0.0.1",
    port: int = 8500,
    *,
    max_batch: int = DEFAULT_MAX_BATCH,
    max_workers: int = 4,
):
    """TF Serving's gRPC ``PredictionService`` and ``ModelService`` for ``store``.

    Predict, GetModelMetadata (``signature_def``) and GetModelStatus, with TF Serving's status
    codes (INVALID_ARGUMENT for a bad request, NOT_FOUND for an unknown model or version).

    Returns:
      ``(server, port)``: call ``server.start()`` and ``server.stop(grace)``.

    Raises:
      ImportError: ``tensorflow-serving-api`` (or ``grpcio``) is not installed.
    """
    from concurrent import futures

    import grpc
    from tensorflow_serving.apis import (
        get_model_metadata_pb2,
        get_model_status_pb2,
        model_service_pb2_grpc,
        predict_pb2,
        prediction_service_pb2_grpc,
    )

    def abort(context, e: ServingError):
        code = getattr(grpc.StatusCode, _HTTP_TO_GRPC.get(e.status, "INTERNAL"))
        context.abort(code, e.message)

    def servable_for(spec) -> Servable:
        if spec.version_label:
            raise ServingError(404, f"Version label {spec.version_label!r} is not configured.")
        version = spec.version.value if spec.HasField("version") else None
        return store.get(spec.name, version)

    def fill_spec(out, servable: Servable, signature: str = ""):
        out.name = servable.name
        out.version.value = servable.version
        out.signature_name = signature

    class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):
            try:
                servable = servable_for(request.model_spec)
                signature = request.model_spec.signature_name or DEFAULT_SIGNATURE
                arrays = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
                outputs = servable.run(signature, arrays, max_batch=max_batch)
                wanted = list(request.output_filter) or sorted(outputs)
                unknown = sorted(set(wanted) - set(outputs))
                if unknown:
                    raise _bad(
                        f"output tensor alias not found in signature: {', '.join(unknown)}. "
                        f"Outputs expected to be in the set {{{','.join(sorted(outputs))}}}."
                    )
                response = predict_pb2.PredictResponse()
                fill_spec(response.model_spec, servable, signature)
                for k in wanted:
                    response.outputs[k].CopyFrom(tf.make_tensor_proto(outputs[k]))
                return response
            except ServingError as e:
                abort(context, e)

        def GetModelMetadata(self, request, context):
            try:
                servable = servable_for(request.model_spec)
                if list(request.metadata_field) != ["signature_def"]:
                    raise _bad("Metadata field signature_def must be requested (and only it).")
                defs = get_model_metadata_pb2.SignatureDefMap()
                for k, v in servable.signature_defs.items():
                    defs.signature_def[k].CopyFrom(v)
                response = get_model_metadata_pb2.GetModelMetadataResponse()
                fill_spec(response.model_spec, servable)
                response.metadata["signature_def"].Pack(defs)
                return response
            except ServingError as e:
                abort(context, e)

    class ModelService(model_service_pb2_grpc.ModelServiceServicer):
        def GetModelStatus(self, request, context):
            try:
                spec = request.model_spec
                version = spec.version.value if spec.HasField("version") else None
                status = store.status(spec.name, version)
                response = get_model_status_pb2.GetModelStatusResponse()
                for entry in status["model_version_status"]:
                    item = response.model_version_status.add()
                    item.version = int(entry["version"])
                    item.state = get_model_status_pb2.ModelVersionStatus.AVAILABLE
                return response
            except ServingError as e:
                abort(context, e)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    return server, bound


def _define_flags():
    # Defined only when run as a program, so importing this module defines no global flags.
    flags.DEFINE_string("model_base_path", "export/models", "Folder of <name>/<N>/ models.")
    flags.DEFINE_string("model_name", None, "Name when --model_base_path is one model's folder.")
    flags.DEFINE_string("host", "127.0.0.1", "Address to bind (0.0.0.0: every interface).")
    ports = {"lower_bound": 0, "upper_bound": 65535}
    flags.DEFINE_integer(
        "port", 8501, "REST port (TF Serving's default 8501; 0: any free).", **ports
    )
    flags.DEFINE_integer(
        "grpc_port", None, "Also serve gRPC here (TF Serving's default 8500).", **ports
    )
    flags.DEFINE_integer(
        "max_batch", DEFAULT_MAX_BATCH, "Most examples in one request.", lower_bound=1
    )
    flags.DEFINE_integer(
        "max_body_bytes",
        None,
        "Largest request body read (413 above it). Default: room for --max_batch examples of "
        f"the largest input any signature takes, at least {MIN_BODY_BYTES} and at most "
        f"{MAX_BODY_BYTES}.",
        lower_bound=1,
    )
    flags.DEFINE_float(
        "request_timeout",
        DEFAULT_REQUEST_TIMEOUT,
        "Seconds to receive a request's line, headers and body (408 after, connection closed).",
        lower_bound=0.001,
    )
    flags.DEFINE_integer(
        "max_connections",
        DEFAULT_MAX_CONNECTIONS,
        "Connections served at once (429 beyond).",
        lower_bound=1,
    )


def main(argv):
    if len(argv) > 1:
        raise cli.UserError(f"Unexpected arguments: {argv[1:]}")
    f = flags.FLAGS
    store = ModelStore(f.model_base_path, model_name=f.model_name)
    grpc_server = None
    if f.grpc_port is not None:
        try:
            grpc_server, grpc_port = make_grpc_server(
                store, f.host, f.grpc_port, max_batch=f.max_batch
            )
        except ImportError as e:
            raise cli.UserError(
                f"--grpc_port needs the tensorflow-serving-api package ({e}): "
                "pip install tensorflow-serving-api==2.21.0, or leave out --grpc_port."
            ) from None
        except RuntimeError as e:  # grpc: "Failed to bind to address ..."
            raise cli.UserError(f"Cannot serve gRPC on {f.host}:{f.grpc_port}: {e}") from None
        grpc_server.start()
        print(f"gRPC on {f.host}:{grpc_port}", flush=True)
    try:
        server = make_server(
            store,
            f.host,
            f.port,
            max_batch=f.max_batch,
            max_body_bytes=f.max_body_bytes,
            request_timeout=f.request_timeout,
            max_connections=f.max_connections,
        )
    except (OSError, OverflowError) as e:
        if grpc_server is not None:
            grpc_server.stop(0)
        reason = getattr(e, "strerror", None) or e
        raise cli.UserError(f"Cannot serve REST on {f.host}:{f.port}: {reason}.") from None
    models = ", ".join(f"{n} {sorted(v)}" for n, v in sorted(store.models.items()))
    # Tests and scripts read this line to find the port when --port=0.
    print(f"Serving {models} on http://{f.host}:{server.server_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if grpc_server is not None:
            grpc_server.stop(0)


if __name__ == "__main__":
    _define_flags()
    cli.run(main)
