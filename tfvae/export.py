"""Exports a trained tfvae model as a TensorFlow Serving SavedModel.

    python -m tfvae.export --workdir=runs/dpvae                      # export/models/dpvae/1/
    python -m tfvae.export --workdir=runs/dpvae --name=fashion --version=3
    python -m tfvae.serve --model_base_path=export/models            # develop against it

The model is loaded with ``tfvae.experiment.load`` from the workdir's ``config.json`` and
latest checkpoint, and written with ``tf.saved_model.save`` in TF Serving's layout:

    export/models/models.config          model_config_list naming every exported model
    export/models/<name>/<N>/            one SavedModel per integer version
        saved_model.pb, variables/
        assets.extra/tfvae_export.json   what was exported (workdir, step, config, signatures)

A version is written to a hidden temporary folder and renamed into place, so a model server
polling the folder never loads half a model.

Signatures (inputs -> outputs; ``n`` requested images, latent size ``d``, data shape ``S``,
e.g. ``S = (28, 28, 1)``; every float is float32):

    generate                   seed int64 [n]                      -> images [n, *S]
    generate_with_temperature  seed int64 [n], temperature [n]     -> images [n, *S]
    decode                     z [n, d]                            -> images [n, *S]
    decode_z0                  z0 [n, d]  (decoupled prior only)   -> images [n, *S]
    encode                     images [n, *S] -> z_mean, z_log_var [n, d] (+ z0 [n, d] for a
                               decoupled prior); deterministic encoders: z (+ z0)
    reconstruct                images [n, *S]                      -> images [n, *S]
    serving_default            = generate

Generation is a pure function of the seed: z0 = temperature * eps with
``eps = tf.random.stateless_normal([d], seed=[seed, 0], alg="philox")`` for each row, z =
g^-1(z0) (the prior's ``from_z0``), images = E[x | z]. A seed's z0 is the same bit for bit in any
batch, on any replica and after any restart, and so is its image for the same batch; in another
batch size the decoder's batched float32 arithmetic may round differently (measured on the smoke
models: 3e-9 absolute, 3e-5 relative), far below the difference between two seeds.

Temperature is a per-row input of its own signature rather than an optional scalar, because
TF Serving's REST API needs every signature input in every request and batches row-format
values along the first axis.

Autoregressive (PixelCNN) decoders export too: the images are samples x ~ p(x | z) drawn pixel
by pixel with uniforms ``u = stateless_uniform(S, seed=[seed, 1], alg="philox")`` per row, so
``decode`` and ``decode_z0`` take a ``seed`` [n] as well, and ``reconstruct`` returns the
teacher-forced mean E[x_i | z, x_<i] at the posterior mean. Sampling costs H*W decoder passes.

The exported functions use TensorFlow ops only: serving needs neither tfvae nor TFP.
"""

import json
import os
import re
import shutil

import tensorflow as tf
from absl import app, flags, logging

from tfvae import cli
from tfvae.errors import InvalidValue

SERVING_DEFAULT = "serving_default"
GENERATE = "generate"
GENERATE_WITH_TEMPERATURE = "generate_with_temperature"
DECODE = "decode"
DECODE_Z0 = "decode_z0"
ENCODE = "encode"
RECONSTRUCT = "reconstruct"
# The counter-based generator whose output is fixed by (shape, seed) on every device.
RNG_ALG = "philox"
# Second word of the stateless seed [seed, stream]: one stream per kind of noise.
LATENT_STREAM, PIXEL_STREAM = 0, 1
MODELS_CONFIG = "models.config"
# Where exports go, and where the model server sees that folder: export/docker-compose.yml
# mounts export/models at /models, the base path written into models.config.
DEFAULT_EXPORT_DIR = os.path.join("export", "models")
DEFAULT_CONFIG_BASE_PATH = "/models"
EXPORT_INFO = os.path.join("assets.extra", "tfvae_export.json")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def stateless_noise(seed: tf.Tensor, shape, *, stream: int, uniform: bool = False) -> tf.Tensor:
    """One independent draw per row, a pure function of (seed[i], stream).

    Row i is ``stateless_normal(shape, seed=[seed[i], stream], alg="philox")`` (or
    ``stateless_uniform`` on [0, 1)), so it does not depend on the other rows of the batch.

    Args:
      seed: int64 [n].
      shape: the shape of one draw.
      stream: the second seed word (``LATENT_STREAM``, ``PIXEL_STREAM``).
      uniform: U[0, 1) instead of N(0, 1).

    Returns:
      float32 [n, *shape].
    """
    shape = [int(s) for s in shape]
    sampler = tf.random.stateless_uniform if uniform else tf.random.stateless_normal
    stream = tf.constant(stream, tf.int64)

    def one(s):
        return sampler(shape, seed=tf.stack([s, stream]), alg=RNG_ALG)

    return tf.map_fn(
        one, tf.cast(seed, tf.int64), fn_output_signature=tf.TensorSpec(shape, tf.float32)
    )


class ServingModule(tf.Module):
    """The serving functions of one model, ready for ``tf.saved_model.save``.

    The module holds the exported ``tf.function`` s and exactly the variables they read (the
    model's weights, not its optimizer or random state), never the Keras objects, so the
    SavedModel carries no Python object graph of tfvae.

    Args:
      model: a built ``tfvae.models.Autoencoder`` (e.g. ``Experiment(...).model``).
      data_shape: the shape S of one example, e.g. (28, 28, 1).

    Attributes:
      functions: name -> ``tf.function`` with a fixed input signature, ``serving_default``
        included.
    """

    def __init__(self, model, data_shape):
        super().__init__(name="tfvae_serving")
        d, shape = int(model.latent_dim), tuple(int(s) for s in data_shape)
        ar = model.autoregressive
        seed_spec = tf.TensorSpec([None], tf.int64, name="seed")
        images_spec = tf.TensorSpec([None, *shape], tf.float32, name="images")

        def spec(name):
            return tf.TensorSpec([None, d], tf.float32, name=name)

        def images(z, seed):
            """E[x | z], or an autoregressive sample with per-row uniforms."""
            if not ar:
                return model.decode(z)
            u = stateless_noise(seed, shape, stream=PIXEL_STREAM, uniform=True)  # [n, *S]
            # PixelCNNDecoder.sample draws u from a seed generator; the exported sampler needs
            # per-row stateless uniforms, so it passes its own to sample_with_uniforms.
            return model.decoder.sample_with_uniforms(z, u)

        def generate_with_temperature(seed, temperature):
            # TF Serving runs this check in the graph; its message names the counts only (no
            # graph tensor names). tfvae.serve checks the counts before running.
            n_seed, n_temperature = tf.shape(seed)[0], tf.shape(temperature)[0]
            check = tf.debugging.Assert(
                tf.equal(n_seed, n_temperature),
                ["seed has", n_seed, "values and temperature", n_temperature,
                 "- give one temperature per seed"],
            )  # fmt: skip
            with tf.control_dependencies([check]):
                seed = tf.identity(seed)
            eps = stateless_noise(seed, [d], stream=LATENT_STREAM)  # [n, d]
            z0 = temperature[:, None] * eps
            return {"images": images(model.prior.from_z0(z0), seed)}

        def generate(seed):
            eps = stateless_noise(seed, [d], stream=LATENT_STREAM)  # [n, d]
            return {"images": images(model.prior.from_z0(eps), seed)}

        def encode(images_in):
            z_mean, z_log_var = model.encode(images_in)
            out = {"z_mean": z_mean, "z_log_var": z_log_var} if model.stochastic else {"z": z_mean}
            if model.decoupled:
                out["z0"] = model.prior.to_z0(z_mean)
            return out

        def reconstruct(images_in):
            return {"images": model.reconstruct(images_in)}

        fns = {
            GENERATE: (generate, [seed_spec]),
            GENERATE_WITH_TEMPERATURE: (
                generate_with_temperature,
                [seed_spec, tf.TensorSpec([None], tf.float32, name="temperature")],
            ),
            ENCODE: (encode, [images_spec]),
            RECONSTRUCT: (reconstruct, [images_spec]),
        }
        if ar:
            fns[DECODE] = (lambda z, seed: {"images": images(z, seed)}, [spec("z"), seed_spec])
        else:
            fns[DECODE] = (lambda z: {"images": images(z, None)}, [spec("z")])
        if model.decoupled:
            if ar:
                fns[DECODE_Z0] = (
                    lambda z0, seed: {"images": images(model.prior.from_z0(z0), seed)},
                    [spec("z0"), seed_spec],
                )
            else:
                fns[DECODE_Z0] = (
                    lambda z0: {"images": images(model.prior.from_z0(z0), None)},
                    [spec("z0")],
                )

        self.functions = {}
        for name, (fn, input_signature) in fns.items():
            self.functions[name] = tf.function(fn, input_signature=input_signature, autograph=False)
        self.functions[SERVING_DEFAULT] = self.functions[GENERATE]
        # Tracing now records which variables the functions read; the module tracks exactly
        # those, so the SavedModel holds the weights and nothing else of the model.
        seen, captured = set(), []
        for fn in self.functions.values():
            for v in fn.get_concrete_function().variables:
                if id(v) not in seen:
                    seen.add(id(v))
                    captured.append(v)
        self.model_variables = captured
        self.input_shape = shape
        self.latent_dim = d


def check_name(name: str) -> str:
    if not _NAME_RE.match(name or ""):
        raise InvalidValue(
            f"Model name {name!r} is not usable in a TF Serving URL: use letters, digits, "
            "'_', '.' and '-', starting with a letter or digit."
        )
    return name


def versions(model_dir: str) -> list[int]:
    """The integer versions with a saved_model.pb under ``export_dir/<name>``, ascending."""
    if not os.path.isdir(model_dir):
        return []
    return sorted(
        int(v)
        for v in os.listdir(model_dir)
        if v.isdigit() and os.path.exists(os.path.join(model_dir, v, "saved_model.pb"))
    )


def exported_models(export_dir: str) -> dict[str, list[int]]:
    """Model name -> its versions, for every model folder under ``export_dir``."""
    if not os.path.isdir(export_dir):
        return {}
    out = {}
    for name in sorted(os.listdir(export_dir)):
        found = versions(os.path.join(export_dir, name))
        if found and _NAME_RE.match(name):
            out[name] = found
    return out


def models_config_text(names, base_path: str = DEFAULT_CONFIG_BASE_PATH) -> str:
    """TF Serving's ``ModelServerConfig`` text proto for ``names`` under ``base_path``.

    Every version on disk is served (``model_version_policy { all {} }``), so
    ``/v1/models/<name>/versions/<N>`` answers for each exported N, as with ``tfvae.serve``.
    """
    lines = ["model_config_list {"]
    for name in names:
        check_name(name)
        path = f"{base_path.rstrip('/')}/{name}"
        lines += [
            "  config {",
            f'    name: "{name}"',
            f'    base_path: "{path}"',
            '    model_platform: "tensorflow"',
            "    model_version_policy {",
            "      all {",
            "      }",
            "    }",
            "  }",
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"


def write_models_config(export_dir: str, base_path: str = DEFAULT_CONFIG_BASE_PATH) -> str:
    """(Re)writes ``export_dir/models.config`` listing every exported model; returns its path.

    Args:
      export_dir: the folder holding ``<name>/<N>/`` models.
      base_path: where the model server sees ``export_dir`` (the compose file mounts it at
        ``/models``).
    """
    path = os.path.join(export_dir, MODELS_CONFIG)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(models_config_text(exported_models(export_dir), base_path))
    os.replace(tmp, path)  # the model server may re-read the file at any time
    return path


def new_version_dir(export_dir: str, name: str, version: int | None = None) -> str:
    """The folder ``export_dir/<name>/<version>`` a new export goes to (version None: newest + 1).

    Raises:
      ValueError: the name is not usable in a URL, or the version is not positive.
      FileExistsError: the version already exists (a served version is never overwritten).
    """
    check_name(name)
    model_dir = os.path.join(export_dir, name)
    existing = versions(model_dir)
    if version is None:
        version = (existing[-1] + 1) if existing else 1
    if int(version) < 1:
        raise InvalidValue(f"version must be a positive integer; got {version}.")
    target = os.path.join(model_dir, str(int(version)))
    if os.path.exists(target):
        raise FileExistsError(
            f"{target} exists. TF Serving may be serving it: export a new version instead "
            f"(existing: {existing}; omit --version to take {existing[-1] + 1 if existing else 1})."
        )
    return target


def export_model(
    model,
    export_dir: str,
    name: str,
    version: int | None = None,
    *,
    data_shape=None,
    info: dict | None = None,
    config_base_path: str = DEFAULT_CONFIG_BASE_PATH,
) -> str:
    """Writes ``model`` as ``export_dir/<name>/<version>/`` and refreshes ``models.config``.

    Args:
      model: a built ``tfvae.models.Autoencoder``.
      export_dir: TF Serving's model base folder (e.g. ``export/models``).
      name: the model name in URLs (``/v1/models/<name>``).
      version: a positive integer; None takes one more than the newest existing version.
      data_shape: the shape of one example; None reads it from the encoder's input.
      info: extra JSON-able facts stored in ``assets.extra/tfvae_export.json``.
      config_base_path: where the model server sees ``export_dir``.

    Returns:
      The version folder.

    Raises:
      FileExistsError: the version already exists (a served version is never overwritten).
    """
    model_dir = os.path.join(export_dir, name)
    target = new_version_dir(export_dir, name, version)
    version = int(os.path.basename(target))
    if data_shape is None:
        data_shape = tuple(model.encoder.inputs[0].shape[1:])
    module = ServingModule(model, data_shape)
    tmp = os.path.join(model_dir, f".tmp-{version}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(model_dir, exist_ok=True)
    try:
        tf.saved_model.save(module, tmp, signatures=dict(module.functions))
        record = {
            "name": name,
            "version": int(version),
            "latent_dim": module.latent_dim,
            "input_shape": list(module.input_shape),
            "autoregressive": model.autoregressive,
            "decoupled_prior": model.decoupled,
            "signatures": sorted(module.functions),
            "rng": {"alg": RNG_ALG, "latent_seed": "[seed, 0]", "pixel_seed": "[seed, 1]"},
            "tensorflow": tf.__version__,
            **(info or {}),
        }
        os.makedirs(os.path.join(tmp, "assets.extra"), exist_ok=True)
        with open(os.path.join(tmp, EXPORT_INFO), "w") as f:
            json.dump(record, f, indent=2, sort_keys=True)
        os.rename(tmp, target)  # atomic: a polling server sees no version or all of it
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    write_models_config(export_dir, config_base_path)
    return target


def default_name(workdir: str) -> str:
    """The model name of an export that names none: the workdir's folder name."""
    return os.path.basename(os.path.normpath(workdir))


def export_experiment(
    exp,
    export_dir: str = DEFAULT_EXPORT_DIR,
    name: str | None = None,
    version: int | None = None,
    *,
    config_base_path: str = DEFAULT_CONFIG_BASE_PATH,
) -> str:
    """Exports the model of a ``tfvae.experiment.Experiment``; returns the version folder.

    The model name defaults to the workdir's folder name; ``tfvae_export.json`` records the
    workdir, checkpoint, step and config.
    """
    name = name or default_name(exp.workdir)
    info = {
        "workdir": os.path.abspath(exp.workdir),
        "checkpoint": exp.restored_from,
        "step": exp.step,
        "objective": exp.config.objective,
        "prior": exp.config.model.prior.name,
        "decoder": exp.config.model.decoder.name,
        "dataset": exp.config.data.name,
        "config": json.loads(exp.config.to_json_best_effort()),
    }
    return export_model(
        exp.model,
        export_dir,
        name,
        version,
        data_shape=exp.spec.shape,
        info=info,
        config_base_path=config_base_path,
    )


def export_workdir(
    workdir: str,
    export_dir: str = DEFAULT_EXPORT_DIR,
    name: str | None = None,
    version: int | None = None,
    *,
    config_base_path: str = DEFAULT_CONFIG_BASE_PATH,
) -> str:
    """Loads the workdir's trained model (latest checkpoint) and exports it; returns the path."""
    from tfvae import experiment

    # Refuse a bad name or an existing version before the (slow) model load.
    new_version_dir(export_dir, name or default_name(workdir), version)
    return export_experiment(
        experiment.load(workdir), export_dir, name, version, config_base_path=config_base_path
    )


def _define_flags():
    # Defined only when run as a program, so importing this module defines no global flags.
    flags.DEFINE_string("workdir", None, "Training workdir to export.")
    flags.DEFINE_string("name", None, "Model name (default: the workdir's folder name).")
    flags.DEFINE_integer("version", None, "Version N (default: newest + 1).")
    flags.DEFINE_string("export_dir", DEFAULT_EXPORT_DIR, "TF Serving model base path.")
    flags.DEFINE_string(
        "config_base_path",
        DEFAULT_CONFIG_BASE_PATH,
        "Where the model server sees --export_dir (models.config).",
    )
    flags.mark_flag_as_required("workdir")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    f = flags.FLAGS
    path = export_workdir(
        f.workdir, f.export_dir, f.name, f.version, config_base_path=f.config_base_path
    )
    with open(os.path.join(path, EXPORT_INFO)) as fp:
        record = json.load(fp)
    logging.info("Exported step %s of %s.", record["step"], f.workdir)
    print(f"exported {path} (step {record['step']}); signatures: {record['signatures']}")
    print(f"models config: {os.path.join(f.export_dir, MODELS_CONFIG)}")


if __name__ == "__main__":
    _define_flags()
    cli.run(main)
