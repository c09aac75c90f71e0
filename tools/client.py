"""Client for tfvae models served by TensorFlow Serving (or ``python -m tfvae.serve``).

REST needs numpy (the command line also absl and tfvae.cli); gRPC needs the official
``tensorflow-serving-api`` package (``pip install tensorflow-serving-api==2.21.0``, the release
matching TensorFlow 2.21).

    python -m tools.client --url=http://localhost:8501 --model=dpvae --seeds=0,1,2,3 \\
        --out=/tmp/samples.png
    python -m tools.client --grpc=localhost:8500 --model=dpvae --seeds=0,1,2,3 --out=/tmp/s.png

As a library:

    from tools.client import RestClient, GrpcClient
    client = RestClient("http://localhost:8501", "dpvae")     # or GrpcClient("localhost:8500", ...)
    images = client.generate([0, 1, 2])                       # [3, 28, 28, 1] float32
    codes = client.encode(images)                             # {"z_mean", "z_log_var", "z0"}
    again = client.decode(codes["z_mean"])

Both clients have the same methods; every method returns numpy arrays. A server-side error
raises ``ServingError`` with the server's message (REST: its HTTP status; gRPC: its status code).
On the command line a refused request or an unreachable server ends in one ``error:`` line and
exit status 2 (``tfvae.cli``).
"""

import json
import urllib.error
import urllib.request

import numpy as np
from absl import app, flags

from tfvae import cli
from tfvae.images import save_image_grid


class ServingError(RuntimeError):
    """The server refused a request. ``status``: HTTP status or gRPC status code name."""

    def __init__(self, status, message: str):
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class _Signatures:
    """The tfvae signatures on top of ``predict(signature, inputs) -> {output: array}``."""

    def predict(self, signature: str, inputs: dict) -> dict:
        raise NotImplementedError

    def generate(self, seeds, temperature=None) -> np.ndarray:
        """Images for int seeds; the same seed always gives the same image."""
        seeds = np.asarray(seeds, np.int64).reshape(-1)
        if temperature is None:
            return self.predict("generate", {"seed": seeds})["images"]
        t = np.broadcast_to(np.asarray(temperature, np.float32), seeds.shape)
        return self.predict("generate_with_temperature", {"seed": seeds, "temperature": t})[
            "images"
        ]

    def decode(self, z, seeds=None) -> np.ndarray:
        """Images for latent codes z [n, d] (autoregressive decoders also take seeds [n])."""
        inputs = {"z": np.asarray(z, np.float32)}
        if seeds is not None:
            inputs["seed"] = np.asarray(seeds, np.int64)
        return self.predict("decode", inputs)["images"]

    def decode_z0(self, z0, seeds=None) -> np.ndarray:
        """Images for generation-space codes z0 [n, d] (decoupled priors only)."""
        inputs = {"z0": np.asarray(z0, np.float32)}
        if seeds is not None:
            inputs["seed"] = np.asarray(seeds, np.int64)
        return self.predict("decode_z0", inputs)["images"]

    def encode(self, images) -> dict:
        """{"z_mean", "z_log_var"} (+ "z0" for decoupled priors; deterministic encoders: "z")."""
        return self.predict("encode", {"images": np.asarray(images, np.float32)})

    def reconstruct(self, images) -> np.ndarray:
        return self.predict("reconstruct", {"images": np.asarray(images, np.float32)})["images"]


class RestClient(_Signatures):
    """TF Serving's REST API: ``POST /v1/models/<model>[/versions/<N>]:predict``.

    Args:
      url: the server, e.g. ``http://localhost:8501``.
      model: the model name.
      version: a version number, or None for the newest served.
      row_format: send ``instances`` (one object per example) instead of columnar ``inputs``.
      timeout: seconds per request.
    """

    def __init__(
        self,
        url: str,
        model: str,
        version: int | None = None,
        *,
        row_format: bool = False,
        timeout: float = 60.0,
    ):
        self.url, self.model, self.version = url.rstrip("/"), model, version
        self.row_format, self.timeout = row_format, timeout
        self._outputs = None  # signature -> output names, read from the metadata when needed

    @property
    def model_url(self) -> str:
        version = f"/versions/{self.version}" if self.version is not None else ""
        return f"{self.url}/v1/models/{self.model}{version}"

    def _call(self, url: str, payload: dict | None = None) -> dict:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            url, data=data, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as e:
            body = e.read()
            try:
                message = json.loads(body)["error"]
            except (ValueError, KeyError, TypeError):
                message = body.decode(errors="replace")
            raise ServingError(e.code, message) from None

    def status(self) -> dict:
        return self._call(self.model_url)

    def metadata(self) -> dict:
        return self._call(self.model_url + "/metadata")

    def request_body(self, signature: str, inputs: dict) -> dict:
        """The JSON body of a :predict request (row or columnar format)."""
        lists = {k: np.asarray(v).tolist() for k, v in inputs.items()}
        if not self.row_format:
            return {"signature_name": signature, "inputs": lists}
        n = len(next(iter(lists.values())))
        return {
            "signature_name": signature,
            "instances": [{k: v[i] for k, v in lists.items()} for i in range(n)],
        }

    def predict(self, signature: str, inputs: dict) -> dict:
        out = self._call(self.model_url + ":predict", self.request_body(signature, inputs))
        if "outputs" in out:  # columnar: one output bare, several as an object
            outputs = out["outputs"]
            if not isinstance(outputs, dict):
                outputs = {self._single_output(signature): outputs}
        else:  # row: one output -> list of values, several -> list of objects
            rows = out["predictions"]
            if rows and isinstance(rows[0], dict):
                outputs = {k: [r[k] for r in rows] for k in rows[0]}
            else:
                outputs = {self._single_output(signature): rows}
        return {k: np.asarray(v, np.float32) for k, v in outputs.items()}

    def _single_output(self, signature: str) -> str:
        # TF Serving leaves the name of a lone output out of the response; read it from the
        # model's metadata once.
        if self._outputs is None:
            defs = self.metadata()["metadata"]["signature_def"]["signature_def"]
            self._outputs = {k: sorted(v["outputs"]) for k, v in defs.items()}
        return self._outputs[signature][0]


class GrpcClient(_Signatures):
    """TF Serving's gRPC API (``PredictionService``, ``ModelService``).

    Args:
      target: ``host:port`` of the gRPC endpoint, e.g. ``localhost:8500``.
      model: the model name.
      version: a version number, or None for the newest served.
      timeout: seconds per call.

    Raises:
      ImportError: ``tensorflow-serving-api`` is not installed.
    """

    def __init__(self, target: str, model: str, version: int | None = None, *, timeout=60.0):
        import grpc
        import tensorflow as tf
        from tensorflow_serving.apis import (
            get_model_metadata_pb2,
            get_model_status_pb2,
            model_service_pb2_grpc,
            predict_pb2,
            prediction_service_pb2_grpc,
        )

        self._grpc, self._tf = grpc, tf
        self._predict_pb2 = predict_pb2
        self._metadata_pb2 = get_model_metadata_pb2
        self._status_pb2 = get_model_status_pb2
        self.model, self.version, self.timeout = model, version, timeout
        self.channel = grpc.insecure_channel(target)
        self.prediction = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)

    def _spec(self, spec, signature: str = ""):
        spec.name = self.model
        if self.version is not None:
            spec.version.value = self.version
        if signature:
            spec.signature_name = signature

    def _rpc(self, method, request):
        try:
            return method(request, timeout=self.timeout)
        except self._grpc.RpcError as e:
            raise ServingError(e.code().name, e.details()) from None

    def predict(self, signature: str, inputs: dict) -> dict:
        request = self._predict_pb2.PredictRequest()
        self._spec(request.model_spec, signature)
        for k, v in inputs.items():
            request.inputs[k].CopyFrom(self._tf.make_tensor_proto(np.asarray(v)))
        response = self._rpc(self.prediction.Predict, request)
        return {k: self._tf.make_ndarray(v) for k, v in response.outputs.items()}

    def metadata(self):
        """The served signatures: a ``SignatureDefMap`` proto."""
        request = self._metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._spec(request.model_spec)
        response = self._rpc(self.prediction.GetModelMetadata, request)
        defs = self._metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(defs)
        return defs

    def status(self):
        request = self._status_pb2.GetModelStatusRequest()
        self._spec(request.model_spec)
        return self._rpc(self.models.GetModelStatus, request)

    def close(self):
        self.channel.close()


def save_grid(images: np.ndarray, path: str) -> None:
    """Tiles [n, H, W, C] images in [0, 1] into one PNG, ceil(sqrt(n)) columns, no gaps."""
    cols = int(np.ceil(np.sqrt(len(images))))
    save_image_grid(images, cols, path, scale=1, gap=0, background=0.0)


def _define_flags():
    # Defined only when run as a program, so importing this module defines no global flags.
    flags.DEFINE_string("url", None, "REST endpoint, e.g. http://localhost:8501.")
    flags.DEFINE_string("grpc", None, "gRPC endpoint, e.g. localhost:8500.")
    flags.DEFINE_string("model", None, "Model name.")
    flags.DEFINE_integer("version", None, "Model version (default: the newest served).")
    flags.DEFINE_list("seeds", ["0", "1", "2", "3", "4", "5", "6", "7", "8"], "Integer seeds.")
    flags.DEFINE_float("temperature", None, "Sample with this temperature.")
    flags.DEFINE_string("out", None, "Write a PNG grid of the samples here.")
    flags.mark_flag_as_required("model")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    f = flags.FLAGS
    if (f.url is None) == (f.grpc is None):
        raise cli.UserError("Give the server as exactly one of --url (REST) or --grpc.")
    try:
        seeds = [int(s) for s in f.seeds]
    except ValueError:
        raise cli.UserError(f"--seeds must be comma-separated integers; got {f.seeds}.") from None
    where = f.url or f.grpc
    try:
        if f.url:
            client = RestClient(f.url, f.model, f.version)
        else:
            client = GrpcClient(f.grpc, f.model, f.version)
        images = client.generate(seeds, f.temperature)
        codes = client.encode(images)
        again = client.reconstruct(images)
    except ServingError as e:
        raise cli.UserError(f"{where} refused the request: {e}") from None
    except urllib.error.URLError as e:
        raise cli.UserError(f"Cannot reach {where}: {e.reason}") from None
    print(f"generate: {images.shape} {images.dtype}, pixel mean {images.mean():.4f}")
    print("encode:", {k: v.shape for k, v in codes.items()})
    print(f"reconstruct: {again.shape}, mean abs change {np.abs(again - images).mean():.4f}")
    if f.out and images.ndim == 4:
        save_grid(images, f.out)
        print("wrote", f.out)


if __name__ == "__main__":
    _define_flags()
    cli.run(main)
