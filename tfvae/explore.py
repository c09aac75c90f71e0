"""An interactive page for a trained model's latent space, served locally.

    python -m tfvae.explore --workdir=runs/dpvae                    # http://127.0.0.1:8080
    python -m tfvae.explore --workdir=runs/dpvae --compare=runs/vae --port=0

Loads the workdir's latest checkpoint, exports it first if ``--export_dir`` holds no export
of that checkpoint (``tfvae.export``), computes its latent map unless the workdir caches one
for this checkpoint (``tfvae.evaluation.latent_map``), and serves on one port:

    GET  /                                  the page (tfvae/explorer/: HTML, JS, CSS; no CDN)
    GET  /explore/models                    the models shown, their export names and versions
    GET  /explore/<i>/map.json, map.bin     model i's latent map
    POST /explore/<i>/density               {"z": [[...]]} or {"z0": ...} -> z, z0, log p(z),
                                            log q(z) (the aggregate posterior)
    /v1/models/...                          TF Serving's REST API (``tfvae.serve``), serving
                                            the exports; the page decodes through :predict

The page decodes with the exported signatures (``decode``, ``decode_z0``, ``encode``,
``generate_with_temperature``), so it also works against a real TF Serving:
``http://127.0.0.1:8080/?server=http://host:8501&model=<name>`` (``&model2=<name>`` for the
compared model) sends every :predict there; the model server must allow cross-origin requests
(``tensorflow_model_server --rest_api_enable_cors_support=true``). Every answer of this server
carries ``Access-Control-Allow-Origin: *`` for the same reason.
"""

import dataclasses
import json
import mimetypes
import os
import posixpath
import re
import socket
from importlib import resources

import numpy as np
import tensorflow as tf
from absl import app, flags, logging

from tfvae import cli, serve
from tfvae import experiment as experiment_lib
from tfvae import export as export_lib
from tfvae.errors import UserError
from tfvae.evaluation import latent_map

# The page: tfvae/explorer/ (package data, pyproject.toml).
STATIC_DIR = "explorer"
_API = re.compile(r"^/explore/(?P<index>\d+)/(?P<what>map\.json|map\.bin|density)$")
MAX_DENSITY_POINTS = 4096


@dataclasses.dataclass
class Entry:
    """One model on the page: its workdir, export, latent map and density functions."""

    workdir: str
    name: str
    version: int
    servable: serve.Servable
    map_dir: str
    densities: latent_map.Densities

    def info(self) -> dict:
        """What ``/explore/models`` says of this model."""
        with open(os.path.join(self.map_dir, latent_map.MAP_JSON)) as f:
            description = json.load(f)
        keys = ("objective", "prior", "dataset", "step", "latent_dim", "decoupled")
        return {
            "name": self.name,
            "version": self.version,
            "workdir": os.path.abspath(self.workdir),
            **{k: description[k] for k in keys},
        }


class Store(serve.ModelStore):
    """The exports of the explored models, one version each (``serve.ModelStore``'s API)."""

    def __init__(self):  # filled by ``add``; no folder scan
        self.models = {}

    def add(self, servable: serve.Servable) -> None:
        self.models.setdefault(servable.name, {})[servable.version] = servable


def find_export(exp, export_dir: str) -> tuple[str, int] | None:
    """(name, version) of an export of this workdir's current checkpoint in ``export_dir``."""
    workdir = os.path.abspath(exp.workdir)
    # The checkpoint's file name: the export may have run from another folder.
    checkpoint = os.path.basename(exp.restored_from)
    for name, found in export_lib.exported_models(export_dir).items():
        for version in reversed(found):
            path = os.path.join(export_dir, name, str(version), export_lib.EXPORT_INFO)
            try:
                with open(path) as f:
                    record = json.load(f)
            except (OSError, ValueError):
                continue
            same = record.get("workdir") == workdir and record.get("checkpoint")
            if same and os.path.basename(record["checkpoint"]) == checkpoint:
                return name, version
    return None


def check_decodes(servable: serve.Servable, latent_dim: int, autoregressive: bool) -> None:
    """UserError unless the export encodes and decodes a code into an image."""
    where = f"export {servable.path}"
    missing = [s for s in (export_lib.DECODE, export_lib.ENCODE) if s not in servable.signatures]
    if missing:
        raise UserError(
            f"The model cannot decode: {where} has no {' or '.join(missing)} signature (it has "
            f"{', '.join(sorted(servable.signatures))}). Export it again with python -m "
            "tfvae.export --workdir=<workdir>."
        )
    inputs = {"z": np.zeros((1, latent_dim), np.float32)}
    if autoregressive:
        inputs["seed"] = np.zeros(1, np.int64)
    try:
        images = servable.run(export_lib.DECODE, inputs)["images"]
    except (serve.ServingError, KeyError) as e:
        raise UserError(f"The model cannot decode: {where}: {e}") from None
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or not np.all(np.isfinite(images)):
        raise UserError(
            f"The model cannot decode into images: {where} returns an array of shape "
            f"{list(images.shape)}{'' if np.all(np.isfinite(images)) else ' with NaN or inf'}; "
            "the explorer draws [n, H, W, 1 or 3] images."
        )


def prepare(workdir: str, export_dir: str, options: latent_map.MapOptions) -> Entry:
    """Loads, exports (if needed), checks and maps one workdir."""
    exp = experiment_lib.load(workdir)
    if exp.spec.kind != "image":
        raise UserError(
            f"The explorer draws images; {workdir} is trained on vector data "
            f"({exp.config.data.name}; tools/two_moons.py draws the two-moons figures)."
        )
    found = find_export(exp, export_dir)
    if found is None:
        path = export_lib.export_experiment(exp, export_dir)
        print(f"exported {path}", flush=True)
        found = export_lib.default_name(workdir), int(os.path.basename(path))
    name, version = found
    servable = serve.Servable(name, version, os.path.join(export_dir, name, str(version)))
    check_decodes(servable, int(exp.model.latent_dim), exp.model.autoregressive)
    folder, ctx, computed = latent_map.load_or_compute(exp, options)
    print(f"{'computed' if computed else 'cached'} latent map {folder}", flush=True)
    densities = latent_map.Densities(ctx)
    # Warm up: the aggregate posterior's encodings and the compiled prior, before the first
    # hover waits for them.
    densities.at_z(np.zeros((1, int(exp.model.latent_dim)), np.float32))
    return Entry(workdir, name, version, servable, folder, densities)


def _static_file(name: str) -> bytes | None:
    root = resources.files("tfvae") / STATIC_DIR
    clean = posixpath.normpath("/" + name).lstrip("/")
    if not clean or clean.startswith(".") or "/" in clean:
        return None
    item = root / clean
    return item.read_bytes() if item.is_file() else None


def _json_array(value):
    return None if value is None else np.asarray(value, np.float64).tolist()


def make_handler(base: type, entries: list[Entry]) -> type:
    """The dev server's handler (``base``) plus the page, the maps and CORS."""

    class Handler(base):
        server_version = "tfvae-explore"

        def end_headers(self):
            self.send_header("Access-Control-Allow-Origin", "*")
            super().end_headers()

        def do_OPTIONS(self):  # CORS preflight
            self.send_response(204)
            self.send_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
            self.send_header("Access-Control-Allow-Headers", "Content-Type")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _send(self, status: int, body: bytes, content_type: str):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            path = self.path.split("?", 1)[0]
            if path.startswith("/v1/"):
                return super().do_GET()
            if path == "/explore/models":
                body = json.dumps([e.info() for e in entries]).encode()
                return self._send(200, body, "application/json")
            match = _API.match(path)
            if match and match["what"] != "density" and int(match["index"]) < len(entries):
                folder = entries[int(match["index"])].map_dir
                with open(os.path.join(folder, match["what"]), "rb") as f:
                    body = f.read()
                kind = "application/json" if path.endswith(".json") else "application/octet-stream"
                return self._send(200, body, kind)
            body = _static_file("index.html" if path == "/" else path)
            if body is None:
                return self._send(404, b'{"error": "not found"}', "application/json")
            kind = mimetypes.guess_type(path)[0] if path != "/" else "text/html"
            return self._send(200, body, f"{kind or 'application/octet-stream'}; charset=utf-8")

        def do_POST(self):
            path = self.path.split("?", 1)[0]
            match = _API.match(path)
            if not (match and match["what"] == "density"):
                return super().do_POST()
            try:
                payload = self._density(match, self._read_body())
                status = 200
            except serve.ServingError as e:
                status, payload = e.status, {"error": e.message}
            self._send(status, json.dumps(payload).encode(), "application/json")

        def _density(self, match, body: bytes) -> dict:
            index = int(match["index"])
            if index >= len(entries):
                raise serve.ServingError(404, f"No model {index}.")
            entry = entries[index]
            try:
                request = json.loads(body)
                (space, codes), *rest = request.items()
                codes = np.asarray(codes, np.float32)
            except (ValueError, AttributeError, TypeError):
                raise serve.ServingError(400, 'Send {"z": [[...], ...]} or {"z0": ...}.') from None
            d = int(entry.servable.inputs[export_lib.DECODE]["z"].shape[1])
            if rest or space not in ("z", "z0") or codes.ndim != 2 or codes.shape[1] != d:
                raise serve.ServingError(400, f'Send {{"z": codes}} or {{"z0": codes}}, [n, {d}].')
            if len(codes) > MAX_DENSITY_POINTS:
                raise serve.ServingError(400, f"At most {MAX_DENSITY_POINTS} codes per request.")
            dens = entry.densities
            out = dens.at_z(codes) if space == "z" else dens.at_z0(codes)
            return {k: _json_array(v) for k, v in out.items()}

    return Handler


def make_explorer_server(entries: list[Entry], host: str, port: int):
    """The threaded HTTP server of the page and the exports (port 0: any free port)."""
    store = Store()
    for entry in entries:
        store.add(entry.servable)
    server = serve.make_server(store, host, port)
    server.RequestHandlerClass = make_handler(server.RequestHandlerClass, entries)
    return server


def _check_port(host: str, port: int) -> None:
    """UserError now if the port is taken, before the slow model loads."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as e:
            raise UserError(
                f"Cannot serve on {host}:{port}: {e.strerror or e}. Pick another --port."
            ) from None


def _define_flags():
    # Defined only when run as a program, so importing this module defines no global flags.
    d = latent_map.MapOptions()
    flags.DEFINE_string("workdir", None, "A trained tfvae workdir.")
    flags.DEFINE_string("compare", None, "A second workdir, shown side by side.")
    flags.DEFINE_string("host", "127.0.0.1", "Address to bind (0.0.0.0: every interface).")
    flags.DEFINE_integer("port", 8080, "Port of the page and the REST API (0: any free).")
    flags.DEFINE_string(
        "export_dir",
        export_lib.DEFAULT_EXPORT_DIR,
        "Where exports are looked for, and written when the checkpoint has none.",
    )
    flags.DEFINE_integer("num_points", d.num_points, "Test examples on the map.")
    flags.DEFINE_integer("num_aggregate", d.num_aggregate, "Training examples defining q(z).")
    flags.mark_flag_as_required("workdir")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    f = flags.FLAGS
    _check_port(f.host, f.port)
    options = latent_map.MapOptions(num_points=f.num_points, num_aggregate=f.num_aggregate)
    workdirs = [f.workdir] + ([f.compare] if f.compare else [])
    entries = [prepare(w, f.export_dir, options) for w in workdirs]
    try:
        server = make_explorer_server(entries, f.host, f.port)
    except OSError as e:
        raise UserError(
            f"Cannot serve on {f.host}:{f.port}: {e.strerror or e}. Pick another --port."
        ) from None
    logging.info("TensorFlow %s; serving %s.", tf.__version__, [e.name for e in entries])
    # Tests and scripts read this line to find the port when --port=0.
    print(f"Explorer on http://{f.host}:{server.server_port}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    _define_flags()
    cli.run(main)
