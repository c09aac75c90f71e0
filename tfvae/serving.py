"""TensorFlow Serving's model store and JSON tensor format, for the dev server ``tfvae.serve``.

    store = ModelStore("export/models")                 # every <name>/<N>/ SavedModel
    signature, arrays, fmt = parse_predict_request(body, store.get("vae"), max_batch=256)
    outputs = store.get("vae").run(signature, arrays)
    response = format_predict_response(outputs, fmt)

Requests are parsed by TF Serving's JSON rules (``tfvae.serve`` describes them). Everything a
client can send is refused with ``ServingError(4xx)``, never an exception of another type:
JSON nested deeper than any tensor, integers beyond a type's range or Python's digit limit,
more examples than ``max_batch`` (checked before any value is converted).

Models are loaded with ``tf.saved_model.load`` only: this module imports no tfvae model code.
"""

import json
import os

import numpy as np
import tensorflow as tf
from absl import logging
from google.protobuf import json_format
from tensorflow.core.protobuf import saved_model_pb2

DEFAULT_SIGNATURE = "serving_default"
DEFAULT_MAX_BATCH = 256
# Deeper than any tensor a signature takes (numpy stops at 64 dimensions).
MAX_JSON_RANK = 32
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
    if rank > MAX_JSON_RANK:
        raise _bad(
            f"JSON Value nested {rank} lists deep: a tensor here has at most {MAX_JSON_RANK} "
            "dimensions."
        )
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
    try:
        return np.array(flat, dtype=dtype.as_numpy_dtype).reshape(shape)
    except (OverflowError, ValueError):  # an integer beyond float64 for a float input
        raise _bad(f"Cannot convert the JSON values to {dtype.name} without loss.") from None


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


def _check_count(count: int, max_batch: int | None, what: str) -> None:
    if max_batch is not None and count > max_batch:
        raise _bad(
            f"{what} holds {count} examples; this server answers at most {max_batch} per "
            "request (--max_batch). Split the request."
        )


def parse_predict_request(
    body: bytes, servable: Servable, *, max_batch: int | None = None
) -> tuple[str, dict, str]:
    """(signature name, input arrays, "row" | "columnar") from a :predict request body.

    With ``max_batch``, a request of more examples is refused as soon as the JSON is parsed,
    before any of its values is converted.
    """
    if not body:
        raise _bad("JSON Parse error: The document is empty")
    try:
        request = json.loads(body)
    except json.JSONDecodeError as e:
        raise _bad(f"JSON Parse error: {e.msg} at offset: {e.pos}") from None
    except UnicodeDecodeError:
        raise _bad("JSON Parse error: the body is not UTF-8 text") from None
    except RecursionError:
        raise _bad("JSON Parse error: the document is nested too deep") from None
    except ValueError:  # Python's limit on the digits of an integer it converts
        raise _bad("JSON Parse error: a number has too many digits") from None
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
        _check_count(len(request["instances"]), max_batch, "'instances'")
        return signature, _row_inputs(request["instances"], specs), "row"
    if has_columns:
        inputs = request["inputs"]
        named = inputs if isinstance(inputs, dict) and not _is_b64(inputs) else {"": inputs}
        for name, value in named.items():
            spec = specs.get(name) if name else next(iter(specs.values()), None)
            batched = spec is not None and spec.shape.rank and spec.shape[0] is None
            if batched and isinstance(value, list):
                _check_count(len(value), max_batch, f"Input {name or 'inputs'!r}")
        return signature, _columnar_inputs(inputs, specs), "columnar"
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
