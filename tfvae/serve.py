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

With ``--grpc_port`` (needs the ``tensorflow-serving-api`` package) it also answers
``PredictionService.Predict``/``GetModelMetadata`` and ``ModelService.GetModelStatus``.

Models are loaded with ``tf.saved_model.load`` only: this module imports no tfvae model code,
so it serves any SavedModel with predict signatures.
"""

import json
import os
import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import tensorflow as tf
from absl import app, flags, logging
from google.protobuf import json_format
from tensorflow.core.protobuf import saved_model_pb2

from tfvae import cli

DEFAULT_SIGNATURE = "serving_default"
DEFAULT_MAX_BATCH = 256
MAX_BODY_BYTES = 64 << 20
# What tfvae.export writes next to each SavedModel (tfvae.export.EXPORT_INFO; not imported, so
# the server loads no tfvae model code).
TFVAE_EXPORT_INFO = os.path.join("assets.extra", "tfvae_export.json")
# JSON numbers a float32 holds exactly: integers up to 2^24 - 1 (TF Serving's lossless rule).
_FLOAT32_MAX_INT = (1 << 24) - 1
_INT_RANGES = {
    tf.int64: (-(1 << 63), (1 << 63) - 1),
    tf.int32: (-(1 << 31), (1 << 31) - 1),
    tf.int16: (-(1 << 15), (1 << 15) - 1),
    tf.int8: (-(1 << 7), (1 << 7) - 1),
    tf.uint8: (0, (1 << 8) - 1),
}
# TF Serving's URL grammar for models (http_rest_api_handler.cc).
_MODEL_URL = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<suffix>/metadata|:[A-Za-z]+)?$"
)


class ServingError(Exception):
    """A request the server refuses: ``status`` is the HTTP code, the message is the error."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _bad(message: str) -> ServingError:
    return ServingError(400, message)


def _json_str(value) -> str:
    """A JSON value for an error message, shortened the way a person wants to read it."""
    text = json.dumps(value)
    return text if len(text) <= 200 else text[:200] + "..."


def _shape_str(shape) -> str:
    return "[" + ",".join("-1" if d is None else str(d) for d in shape) + "]"


# ----------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------
class Servable:
    """One loaded version of one model.

    Attributes:
      name, version, path: what and where.
      signatures: signature name -> the loaded function (keyword arguments = input aliases).
      inputs, outputs: signature name -> {alias: tf.TensorSpec}.
      signature_defs: signature name -> the ``SignatureDef`` proto read from saved_model.pb.
    """

    def __init__(self, name: str, version: int, path: str):
        self.name, self.version, self.path = name, version, path
        self._loaded = tf.saved_model.load(path)  # keeps the variables alive
        self.signatures = dict(self._loaded.signatures)
        self.inputs = {k: dict(f.structured_input_signature[1]) for k, f in self.signatures.items()}
        self.outputs = {k: dict(f.structured_outputs) for k, f in self.signatures.items()}
        proto = saved_model_pb2.SavedModel()
        with open(os.path.join(path, "saved_model.pb"), "rb") as f:
            proto.ParseFromString(f.read())
        meta_graph = next(m for m in proto.meta_graphs if "serve" in m.meta_info_def.tags)
        self.signature_defs = {
            k: v for k, v in meta_graph.signature_def.items() if k in self.signatures
        }
        # tfvae.export's signatures take one row per example in every input (seed and
        # temperature, z and seed): their counts are checked before the model runs, with a
        # message naming the inputs, instead of failing an in-graph assertion.
        self.rows_match = os.path.exists(os.path.join(path, TFVAE_EXPORT_INFO))

    def input_specs(self, signature: str) -> dict:
        if signature not in self.signatures:
            raise _bad(
                f'Serving signature name: "{signature}" not found in signature def. Model '
                f"{self.name} version {self.version} has: {', '.join(sorted(self.signatures))}."
            )
        return self.inputs[signature]

    def run(self, signature: str, arrays: dict, *, max_batch: int | None = None) -> dict:
        """Checks ``arrays`` against the signature and runs it; returns numpy outputs.

        Raises:
          ServingError(400): unknown signature or input, missing input, wrong dtype or shape,
            more than ``max_batch`` examples, or an error raised by the model's ops.
        """
        specs = self.input_specs(signature)
        missing, extra = sorted(set(specs) - set(arrays)), sorted(set(arrays) - set(specs))
        if missing or extra:
            raise _bad(
                f"input size does not match signature {signature!r}: expected inputs "
                f"{{{','.join(sorted(specs))}}}. Sent extra: {{{','.join(extra)}}}. Missing but "
                f"required: {{{','.join(missing)}}}."
            )
        feeds = {}
        for alias, spec in specs.items():
            value = np.asarray(arrays[alias])
            if value.dtype != spec.dtype.as_numpy_dtype:
                raise _bad(
                    f"Input {alias!r} of signature {signature!r} must be {spec.dtype.name}; got "
                    f"{value.dtype}."
                )
            if not spec.shape.is_compatible_with(value.shape):
                raise _bad(
                    f"Input {alias!r} of signature {signature!r} must have shape "
                    f"{_shape_str(spec.shape.as_list())} (-1: any size); got "
                    f"{_shape_str(value.shape)}."
                )
            batched = spec.shape.rank and spec.shape[0] is None
            if max_batch is not None and batched and value.shape[0] > max_batch:
                raise _bad(
                    f"Input {alias!r} holds {value.shape[0]} examples; this server answers at "
                    f"most {max_batch} per request (--max_batch). Split the request."
                )
            feeds[alias] = tf.convert_to_tensor(value, spec.dtype)
        if self.rows_match:
            _check_row_counts(feeds)
        try:
            outputs = self.signatures[signature](**feeds)
        except (tf.errors.InvalidArgumentError, tf.errors.OutOfRangeError) as e:
            raise _bad(_op_error_message(e.message)) from None
        except tf.errors.OpError as e:
            raise ServingError(500, e.message) from None
        return {k: v.numpy() for k, v in outputs.items()}

    def metadata(self) -> dict:
        """TF Serving's GetModelMetadata response, as JSON."""
        defs = {
            k: json_format.MessageToDict(
                v, always_print_fields_with_no_presence=True, preserving_proto_field_name=True
            )
            for k, v in sorted(self.signature_defs.items())
        }
        return {
            "model_spec": {"name": self.name, "signature_name": "", "version": str(self.version)},
            "metadata": {"signature_def": {"signature_def": defs}},
        }


def _check_row_counts(feeds: dict) -> None:
    """ServingError(400) unless every input has the same number of rows (``seed`` first)."""
    names = sorted(feeds, key=lambda k: (k != "seed", k))
    batched = [k for k in names if feeds[k].shape.rank]
    if len(batched) < 2:
        return
    first = batched[0]
    n = int(feeds[first].shape[0])

    def one(name):
        return name if feeds[name].shape.rank == 1 else f"row of {name}"

    for other in batched[1:]:
        m = int(feeds[other].shape[0])
        if m != n:
            unit = "values" if feeds[first].shape.rank == 1 else "rows"
            if n == 1:
                unit = unit[:-1]
            raise _bad(
                f"{first} has {n} {unit} and {other} {m}: give one {one(other)} per {one(first)}."
            )


def _op_error_message(message: str) -> str:
    """The line a person needs from a TensorFlow op error (an in-graph assertion's text)."""
    for line in message.splitlines():
        if "assertion failed:" in line:
            return line.strip()
    return message


def _version_dirs(folder: str) -> dict[int, str]:
    if not os.path.isdir(folder):
        return {}
    return {
        int(v): os.path.join(folder, v)
        for v in os.listdir(folder)
        if v.isdigit() and os.path.exists(os.path.join(folder, v, "saved_model.pb"))
    }


class ModelStore:
    """Every version of every model under ``base_path``, loaded at start.

    Args:
      base_path: a folder of models ``<name>/<N>/`` (``tfvae.export``'s ``export/models``), or
        one model's folder ``<N>/`` (TF Serving's ``--model_base_path``).
      model_name: the name for a single model's folder (default: the folder's name).
    """

    def __init__(self, base_path: str, *, model_name: str | None = None):
        if not os.path.isdir(base_path):
            raise FileNotFoundError(f"--model_base_path {base_path!r} is not a folder.")
        self.models: dict[str, dict[int, Servable]] = {}
        single = _version_dirs(base_path)
        if single:
            folders = {model_name or os.path.basename(os.path.normpath(base_path)): base_path}
        else:
            folders = {n: os.path.join(base_path, n) for n in sorted(os.listdir(base_path))}
        for name, folder in folders.items():
            found = _version_dirs(folder)
            if found:
                self.models[name] = {v: Servable(name, v, p) for v, p in sorted(found.items())}
                logging.info("Loaded model %s versions %s.", name, sorted(found))
        if not self.models:
            raise FileNotFoundError(
                f"No SavedModel under {base_path!r}: expected <name>/<N>/saved_model.pb "
                "(export one with `python -m tfvae.export --workdir=...`)."
            )

    def get(self, name: str, version: int | None = None) -> Servable:
        """The requested version, or the newest; ServingError(404) if there is none."""
        found = self.models.get(name)
        if found is None:
            raise ServingError(
                404,
                f"Servable not found for request: Latest({name}). Models served: "
                f"{', '.join(sorted(self.models))}.",
            )
        if version is None:
            return found[max(found)]
        if version not in found:
            raise ServingError(
                404,
                f"Servable not found for request: Specific({name}, {version}). Versions of "
                f"{name}: {', '.join(map(str, sorted(found)))}.",
            )
        return found[version]

    def status(self, name: str, version: int | None = None) -> dict:
        """TF Serving's GetModelStatus response, as JSON."""
        self.get(name, version)  # 404 for an unknown model or version
        versions = [version] if version is not None else sorted(self.models[name])
        return {
            "model_version_status": [
                {
                    "version": str(v),
                    "state": "AVAILABLE",
                    "status": {"error_code": "OK", "error_message": ""},
                }
                for v in versions
            ]
        }


# ----------------------------------------------------------------------------------------------
# TF Serving's JSON tensor format
# ----------------------------------------------------------------------------------------------
def _is_b64(value) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _dense_shape(value) -> list[int]:
    """The shape read along first elements, as TF Serving does."""
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _check_scalar(value, dtype: tf.DType):
    def type_error():
        kind = {bool: "True/False", dict: "Object", str: "String", type(None): "Null"}.get(
            type(value), "Number"
        )
        return _bad(
            f"JSON Value: {_json_str(value)} Type: {kind} is not of expected type: {dtype.name}"
        )

    if dtype.is_floating:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise type_error()
        if dtype == tf.float32:
            too_big = isinstance(value, int) and abs(value) > _FLOAT32_MAX_INT
            out_of_range = isinstance(value, float) and np.isfinite(value) and abs(value) > 3.4e38
            if too_big or out_of_range:
                raise _bad(
                    f"Cannot convert JSON value: {value} to float without loss of precision."
                )
        return value
    if dtype in _INT_RANGES:
        lo, hi = _INT_RANGES[dtype]
        if type(value) is not int or not lo <= value <= hi:
            raise type_error()
        return value
    if dtype == tf.bool:
        if type(value) is not bool:
            raise type_error()
        return value
    raise _bad(f"Conversion of JSON Value: {_json_str(value)} to type: {dtype.name} unsupported.")


def json_to_array(value, dtype: tf.DType) -> np.ndarray:
    """A dense numpy array from a JSON value, checked the way TF Serving checks it.

    Every leaf must sit at depth rank and every list at one depth must have the size of the
    first one (no ragged lists); values must have the input's type (int64 wants JSON integers,
    float32 any number it holds exactly).
    """
    shape = _dense_shape(value)
    rank = len(shape)
    flat = []

    def fill(v, level):
        if not isinstance(v, list):
            if level != rank:
                raise _bad(
                    f"JSON Value: {_json_str(v)} found at incorrect level: {level + 1} in the "
                    f"JSON DOM. Expected at level: {rank}"
                )
            flat.append(_check_scalar(v, dtype))
            return
        if level >= rank:
            raise _bad(f"Encountered list at unexpected level: {level} expected < {rank}")
        if len(v) != shape[level]:
            raise _bad(
                f"Encountered list at unexpected size: {len(v)} at level: {level} expected "
                f"size: {shape[level]}"
            )
        if level == rank - 1 and all(type(x) in (int, float) for x in v):
            if dtype.is_floating or dtype in _INT_RANGES:
                # Fast path for a row of plain numbers: check, then extend in one go.
                for x in v:
                    _check_scalar(x, dtype)
                flat.extend(v)
                return
        for x in v:
            fill(x, level + 1)

    fill(value, 0)
    return np.array(flat, dtype=dtype.as_numpy_dtype).reshape(shape)


def _row_inputs(instances: list, specs: dict) -> dict:
    if not instances:
        raise _bad("JSON Value: instances: No values in 'instances' array")
    names = sorted(specs)
    objects = isinstance(instances[0], dict) and not _is_b64(instances[0])
    if not objects and len(specs) > 1:
        raise _bad(
            "instances is a plain list, but expecting list of objects as multiple input tensors "
            f"required as per tensorinfo_map: {{{','.join(names)}}}"
        )
    rows = {name: [] for name in names}
    for i, item in enumerate(instances):
        item_is_object = isinstance(item, dict) and not _is_b64(item)
        if objects != item_is_object:
            raise _bad(
                f"Expecting {'object' if objects else 'value/list'} but got "
                f"{'object' if item_is_object else 'list'} at item {i} of input list"
            )
        if not objects:
            item = {names[0]: item}
        if set(item) != set(names):
            raise _bad(
                f"Failed to process element: {i} of 'instances' list. JSON object: "
                f"{_json_str(item)} keys must be equal to: {','.join(names)}"
            )
        for name in names:
            try:
                rows[name].append(json_to_array(item[name], specs[name].dtype))
            except ServingError as e:
                raise _bad(
                    f"Failed to process element: {i} key: {name} of 'instances' list. Error: "
                    f"{e.message}"
                ) from None
    out = {}
    for name, values in rows.items():
        first = values[0].shape
        for i, v in enumerate(values):
            if v.shape != first:
                raise _bad(
                    f"Failed to process element: {i} key: {name} of 'instances' list. Error: "
                    f"Expecting shape {_shape_str(first)} but got: {_shape_str(v.shape)}"
                )
        out[name] = np.stack(values)
    return out


def _columnar_inputs(inputs, specs: dict) -> dict:
    names = sorted(specs)
    if not isinstance(inputs, dict) or _is_b64(inputs):
        if len(specs) > 1:
            raise _bad(
                "inputs is a plain value/list, but expecting an object as multiple input "
                f"tensors required as per tensorinfo_map: {{{','.join(names)}}}"
            )
        return {names[0]: _named_input(inputs, names[0], specs)}
    extra = sorted(set(inputs) - set(names))
    if extra:
        raise _bad(
            f"Unknown named input(s): {', '.join(extra)} in 'inputs' object; the signature "
            f"takes {{{','.join(names)}}}."
        )
    out = {}
    for name in names:
        if name not in inputs:
            raise _bad(f"Missing named input: {name} in 'inputs' object.")
        out[name] = _named_input(inputs[name], name, specs)
    return out


def _named_input(value, name: str, specs: dict) -> np.ndarray:
    """``json_to_array`` for input ``name`` of a columnar request; errors name the input."""
    try:
        return json_to_array(value, specs[name].dtype)
    except ServingError as e:
        raise _bad(f"Failed to process input: {name} of 'inputs'. Error: {e.message}") from None


def parse_predict_request(body: bytes, servable: Servable) -> tuple[str, dict, str]:
    """(signature name, input arrays, "row" | "columnar") from a :predict request body."""
    if not body:
        raise _bad("JSON Parse error: The document is empty")
    try:
        request = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        where = f" at offset: {e.pos}" if isinstance(e, json.JSONDecodeError) else ""
        raise _bad(f"JSON Parse error: {getattr(e, 'msg', e)}{where}") from None
    if not isinstance(request, dict):
        raise _bad(f"JSON Value: {_json_str(request)} Is not object")
    signature = request.get("signature_name", DEFAULT_SIGNATURE)
    if not isinstance(signature, str):
        raise _bad(
            "JSON Value: signature_name not formatted correctly. 'signature_name' key must be a "
            "string value."
        )
    specs = servable.input_specs(signature)
    has_rows, has_columns = "instances" in request, "inputs" in request
    if has_rows and has_columns:
        raise _bad(
            "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist"
        )
    if has_rows:
        if not isinstance(request["instances"], list):
            raise _bad("Excepting 'instances' to be an list/array")
        return signature, _row_inputs(request["instances"], specs), "row"
    if has_columns:
        return signature, _columnar_inputs(request["inputs"], specs), "columnar"
    raise _bad("Missing 'inputs' or 'instances' key")


def array_to_json(array: np.ndarray):
    """Nested lists; float32 values written with their shortest exact decimal (as TF Serving)."""
    if array.dtype == np.float32:
        # str(float32) is the shortest decimal that reads back as the same float32.
        return np.array(array.astype(str), dtype=np.float64).tolist()
    if array.dtype.kind in "SO":
        return np.vectorize(lambda b: b.decode() if isinstance(b, bytes) else b)(array).tolist()
    return array.tolist()


def format_predict_response(outputs: dict, fmt: str) -> dict:
    """TF Serving's response: ``predictions`` (row) or ``outputs`` (columnar)."""
    names = sorted(outputs)
    if fmt == "columnar":
        if len(names) == 1:
            return {"outputs": array_to_json(outputs[names[0]])}
        return {"outputs": {k: array_to_json(outputs[k]) for k in names}}
    sizes = {k: (outputs[k].shape[0] if outputs[k].ndim else None) for k in names}
    if len(set(sizes.values())) != 1 or None in sizes.values():
        raise ServingError(
            500, f"Outputs have different batch sizes {sizes}; use the columnar 'inputs' format."
        )
    columns = {k: array_to_json(outputs[k]) for k in names}
    if len(names) == 1:
        return {"predictions": columns[names[0]]}
    n = next(iter(sizes.values()))
    return {"predictions": [{k: columns[k][i] for k in names} for i in range(n)]}


# ----------------------------------------------------------------------------------------------
# HTTP
# ----------------------------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "tfvae-serve"
    store: ModelStore
    max_batch: int

    def log_message(self, format, *args):
        logging.info("%s %s", self.address_string(), format % args)

    def _reply(self, status: int, payload: dict):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _read_body(self) -> bytes:
        length = self.headers.get("Content-Length", "0")
        if not length.isdigit():
            self.close_connection = True
            raise _bad(f"Bad Content-Length header {length!r}.")
        if int(length) > MAX_BODY_BYTES:
            self.close_connection = True  # the body stays unread
            raise ServingError(413, f"Request body over {MAX_BODY_BYTES} bytes.")
        return self.rfile.read(int(length))

    def _route(self, method: str):
        # Read the whole body first, so a keep-alive connection stays in step on any error.
        body = self._read_body() if method == "POST" else b""
        path = self.path.split("?", 1)[0]
        match = _MODEL_URL.match(path)
        if not match:
            raise ServingError(404, f"Malformed request: {method} {path}")
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
            signature, arrays, fmt = parse_predict_request(body, servable)
            outputs = servable.run(signature, arrays, max_batch=self.max_batch)
            return format_predict_response(outputs, fmt)
        if method == "POST" and suffix in (":classify", ":regress"):
            raise _bad(
                f"{suffix[1:]} is not served: the exported signatures are predict signatures; "
                "use :predict."
            )
        raise ServingError(404, f"Malformed request: {method} {path}")

    def _handle(self, method: str):
        try:
            status, payload = 200, self._route(method)
        except ServingError as e:
            status, payload = e.status, {"error": e.message}
        except Exception as e:  # the server keeps serving whatever one request does
            logging.exception("Request %s %s failed.", method, self.path)
            status, payload = 500, {"error": f"Internal error: {type(e).__name__}: {e}"}
        self._reply(status, payload)

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")


def make_server(
    store: ModelStore,
    host: str = "127.0.0.1",
    port: int = 8501,
    *,
    max_batch: int = DEFAULT_MAX_BATCH,
) -> ThreadingHTTPServer:
    """A threaded HTTP server for ``store`` (port 0: any free port, see ``server_port``).

    Call ``serve_forever()`` (e.g. in a thread) and ``shutdown()``; each request runs in its
    own thread.
    """
    handler = type("Handler", (_Handler,), {"store": store, "max_batch": int(max_batch)})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


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
    flags.DEFINE_integer("port", 8501, "REST port (TF Serving's default 8501; 0: any free).")
    flags.DEFINE_integer("grpc_port", None, "Also serve gRPC here (TF Serving's default 8500).")
    flags.DEFINE_integer("max_batch", DEFAULT_MAX_BATCH, "Most examples in one request.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
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
        server = make_server(store, f.host, f.port, max_batch=f.max_batch)
    except OSError as e:
        if grpc_server is not None:
            grpc_server.stop(0)
        raise cli.UserError(f"Cannot serve REST on {f.host}:{f.port}: {e.strerror or e}.") from None
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
