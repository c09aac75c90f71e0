"""Tests for tfvae.export: the SavedModel answers like the trained model, without tfvae.

Smoke-trains dpVAE (decoupled prior) and VAE (standard normal), exports both and checks every
signature against the in-memory model in a fresh process that imports only TensorFlow, the
per-seed determinism of ``generate``, ``saved_model_cli``, versioning, ``models.config`` and
an autoregressive (PixelCNN) export.
"""

import fcntl
import json
import os
import re
import subprocess
import sys
import textwrap
import types

import ml_collections
import numpy as np
import pytest
import tensorflow as tf

from tests.smoke import SMOKE_CONFIGS, smoke_root, smoke_workdir
from tfvae import data as data_lib
from tfvae import export
from tfvae.build import build_model
from tfvae.config_loader import load_config
from tfvae.experiment import load as load_experiment

# Every test here needs the module's expensive fixture (seconds to minutes).
pytestmark = pytest.mark.slow

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = sys.executable
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": REPO}
CLI_SEEDS = np.array([3, 4], np.int64)
CLI_BASE_PATH = "/srv/tf_models"


def export_smoke_models(root) -> tuple[str, dict]:
    """Exports every smoke model (``tests.smoke``) under ``root``, once per test run: a later
    call (another test file or xdist worker) waits for the first and reuses its files.
    Returns (models folder, name -> Experiment for the models exported by this call)."""
    models = os.path.join(str(root), "models")
    experiments = {}
    for name in SMOKE_CONFIGS:
        workdir = smoke_workdir(root, name)
        with open(os.path.join(str(root), ".lock-export"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not export.versions(os.path.join(models, name)):
                experiments[name] = load_experiment(workdir)
                export.export_experiment(experiments[name], models, name)
    return models, experiments


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """(models folder, name -> Experiment restored from the exported checkpoint)."""
    root = smoke_root(tmp_path_factory)
    models, experiments = export_smoke_models(root)
    for name in SMOKE_CONFIGS:
        if name not in experiments:
            experiments[name] = load_experiment(str(root / name))
    return models, experiments


def _inputs(exp) -> dict:
    d = exp.model.latent_dim
    rng = np.random.default_rng(0)
    return {
        "seed": np.array([5, 7, 5, -3, 2**40], np.int64),
        "temperature": np.array([1.0, 0.5, 0.0, 2.0, 1.0], np.float32),
        "z": rng.normal(size=(3, d)).astype(np.float32),
        "images": np.asarray(data_lib.to_float(exp.data.val[:3])),
    }


def _reference(exp, inputs: dict) -> dict:
    """Every signature's expected outputs, from the in-memory model and the documented RNG."""
    model = exp.model
    d = model.latent_dim
    eps = np.stack(
        [
            tf.random.stateless_normal(
                [d], seed=tf.constant([s, 0], tf.int64), alg="philox"
            ).numpy()
            for s in inputs["seed"]
        ]
    )
    z, x = tf.constant(inputs["z"]), tf.constant(inputs["images"])
    z_mean, z_log_var = model.encode(x)
    out = {
        "generate/images": model.decode(model.prior.from_z0(tf.constant(eps))),
        "generate_with_temperature/images": model.decode(
            model.prior.from_z0(tf.constant(inputs["temperature"][:, None] * eps))
        ),
        "decode/images": model.decode(z),
        "encode/z_mean": z_mean,
        "encode/z_log_var": z_log_var,
        "reconstruct/images": model.reconstruct(x),
    }
    if model.decoupled:
        out["decode_z0/images"] = model.decode(model.prior.from_z0(z))
        out["encode/z0"] = model.prior.to_z0(z_mean)
    return {k: np.asarray(v) for k, v in out.items()}


# Runs every signature of each (SavedModel, inputs) pair in a process that imports only
# TensorFlow, and reports whether anything of tfvae or TFP was imported.
RUN_ALL = textwrap.dedent(
    """
    import sys
    import numpy as np
    import tensorflow as tf

    args = sys.argv[1:]
    for path, inputs_file, out_file in zip(args[0::3], args[1::3], args[2::3]):
        inputs = dict(np.load(inputs_file))
        loaded = tf.saved_model.load(path)
        feeds = {
            "generate": {"seed": inputs["seed"]},
            "generate_with_temperature": {
                "seed": inputs["seed"], "temperature": inputs["temperature"]
            },
            "decode": {"z": inputs["z"]},
            "decode_z0": {"z0": inputs["z"]},
            "encode": {"images": inputs["images"]},
            "reconstruct": {"images": inputs["images"]},
            "serving_default": {"seed": inputs["seed"]},
        }
        out = {}
        for name, fn in loaded.signatures.items():
            for key, value in fn(**{k: tf.constant(v) for k, v in feeds[name].items()}).items():
                out[name + "/" + key] = value.numpy()
        np.savez(out_file, **out)
    roots = ("tfvae", "tensorflow_probability")
    print("LEAKED", sorted(m for m in sys.modules if m.split(".")[0] in roots))
    """
)


def _signature_specs(fn) -> tuple[dict, dict]:
    """({input: (dtype, shape)}, {output: (dtype, shape)}) of a loaded signature."""

    def describe(specs):
        return {k: (v.dtype, tuple(v.shape.as_list())) for k, v in specs.items()}

    return describe(fn.structured_input_signature[1]), describe(fn.structured_outputs)


@pytest.fixture(scope="module")
def background(smoke, tmp_path_factory):
    """Starts the out-of-process checks at once: every signature in a fresh process that
    imports only TensorFlow, ``saved_model_cli show --all`` and ``saved_model_cli run``. Each
    spends most of its time importing TensorFlow, so they run side by side; ``result(key)``
    waits for one and returns (stdout, stderr, returncode)."""
    models, experiments = smoke
    work = tmp_path_factory.mktemp("background")
    inputs, fresh_args = {}, []
    for name, exp in experiments.items():
        inputs[name] = _inputs(exp)
        np.savez(work / f"{name}_in.npz", **inputs[name])
        fresh_args += [os.path.join(models, name, "1"), work / f"{name}_in.npz"]
        fresh_args.append(work / f"{name}_out.npz")
    cli = os.path.join(os.path.dirname(PYTHON), "saved_model_cli")
    dpvae = os.path.join(models, "dpvae", "1")
    np.save(work / "seeds.npy", CLI_SEEDS)
    vae_workdir = smoke_workdir(smoke_root(tmp_path_factory), "vae")
    export_cmd = [PYTHON, "-m", "tfvae.export", f"--workdir={vae_workdir}"]
    commands = {
        # No PYTHONPATH: the fresh process could not import tfvae even by accident.
        "fresh": ([PYTHON, "-c", RUN_ALL, *map(str, fresh_args)], {**ENV, "PYTHONPATH": ""}),
        "show": ([cli, "show", "--dir", dpvae, "--all"], ENV),
        "run": ([cli, "run", "--dir", dpvae, "--tag_set", "serve", "--signature_def",
                 "generate", "--inputs", f"seed={work / 'seeds.npy'}", "--outdir",
                 str(work / "cli_out")], ENV),
        # The export command with every flag, into a folder of its own ...
        "export": ([*export_cmd, "--name=cli_vae", "--version=3", "--export_dir=cli_models",
                    f"--config_base_path={CLI_BASE_PATH}"], ENV),
        # ... and onto a version that exists: the smoke export models/vae/1 (the name
        # defaults to the workdir's folder name, "vae").
        "export_exists": ([*export_cmd, f"--export_dir={models}", "--version=1"], ENV),
    }  # fmt: skip
    procs = {
        k: subprocess.Popen(
            c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=work
        )
        for k, (c, env) in commands.items()
    }
    results = {}

    def result(key):
        if key not in results:
            out, err = procs[key].communicate(timeout=600)
            results[key] = (out, err, procs[key].returncode)
        return results[key]

    yield types.SimpleNamespace(work=work, inputs=inputs, result=result)
    for proc in procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("name", sorted(SMOKE_CONFIGS))
def test_layout_signatures_and_exact_specs(smoke, name):
    models, experiments = smoke
    exp = experiments[name]
    assert export.exported_models(models) == {"dpvae": [1], "vae": [1]}
    path = os.path.join(models, name, "1")
    sigs = tf.saved_model.load(path).signatures
    z0 = name == "dpvae"
    common = {"generate", "generate_with_temperature", "decode", "encode", "reconstruct"}
    assert set(sigs) == common | {"serving_default"} | ({"decode_z0"} if z0 else set())
    specs = {k: _signature_specs(fn) for k, fn in sigs.items()}
    d, shape = exp.model.latent_dim, tuple(exp.data.shape)
    code, images = (tf.float32, (None, d)), {"images": (tf.float32, (None, *shape))}
    seed = (tf.int64, (None,))
    assert specs["generate"] == ({"seed": seed}, images)
    assert specs["serving_default"] == specs["generate"]
    temperature = (tf.float32, (None,))
    assert specs["generate_with_temperature"] == (
        {"seed": seed, "temperature": temperature},
        images,
    )
    assert specs["decode"] == ({"z": code}, images)
    assert specs["reconstruct"] == (images, images)
    codes = {"z_mean": code, "z_log_var": code, **({"z0": code} if z0 else {})}
    assert specs["encode"] == (images, codes)
    if z0:
        assert specs["decode_z0"] == ({"z0": code}, images)
    with open(os.path.join(path, export.EXPORT_INFO)) as f:
        info = json.load(f)
    assert info["step"] == exp.step == exp.config.train.num_steps
    assert info["decoupled_prior"] is z0 and info["autoregressive"] is False


@pytest.mark.parametrize("name", sorted(SMOKE_CONFIGS))
def test_generate_is_a_function_of_each_seed(smoke, name):
    models, experiments = smoke
    model, shape = experiments[name].model, experiments[name].data.shape
    sigs = tf.saved_model.load(os.path.join(models, name, "1")).signatures

    def gen(seeds, temperature=None):
        seed = tf.constant(seeds, tf.int64)
        if temperature is None:
            return sigs["generate"](seed=seed)["images"].numpy()
        t = tf.constant(temperature, tf.float32)
        return sigs["generate_with_temperature"](seed=seed, temperature=t)["images"].numpy()

    batch = gen([5, 7, 5, 11])
    np.testing.assert_array_equal(batch[0], batch[2])
    assert np.abs(batch[0] - batch[1]).max() > 1e-6
    assert np.abs(batch[0] - batch[3]).max() > 1e-6

    # A seed's latent draw is bit-identical in any batch ...
    def noise(seeds):
        seeds = tf.constant(seeds, tf.int64)
        return export.stateless_noise(seeds, [model.latent_dim], stream=0).numpy()

    np.testing.assert_array_equal(noise([11, 7, 3])[:2], noise([5, 7, 5, 11])[[3, 1]])
    # ... and its image differs only by float32 rounding, which the batched decoder arithmetic
    # may do differently for another batch size: far below the change from another seed.
    same = {"rtol": 1e-4, "atol": 1e-6}
    np.testing.assert_allclose(gen([7])[0], batch[1], **same)
    np.testing.assert_allclose(gen([11, 7, 3])[:2], batch[[3, 1]], **same)
    np.testing.assert_array_equal(gen([5, 7, 5, 11], [1.0] * 4), batch)
    # Temperature 0 puts every seed at z0 = 0, the mode of the generation space.
    cold = gen([1, 2], [0.0, 0.0])
    np.testing.assert_array_equal(cold[0], cold[1])
    mode = model.decode(model.prior.from_z0(tf.zeros([1, model.latent_dim]))).numpy()[0]
    np.testing.assert_allclose(cold[0], mode, rtol=1e-4, atol=1e-5)
    assert gen([]).shape == (0, *shape)
    # TF Serving runs the in-graph check (tfvae.serve checks the counts before running).
    pattern = r"\[seed has\] \[2\] \[values and temperature\] \[1\] .*one temperature per seed"
    with pytest.raises(tf.errors.InvalidArgumentError, match=pattern) as e:
        gen([1, 2], [1.0])
    assert "strided_slice" not in e.value.message  # no graph tensor names


def test_versions_names_and_models_config(smoke, tmp_path):
    _, experiments = smoke
    out = tmp_path / "models"
    for version in ("1", "5"):  # stand-ins for earlier exports
        (out / "fmnist" / version).mkdir(parents=True)
        (out / "fmnist" / version / "saved_model.pb").touch()
    (out / "fmnist" / "notes").mkdir()  # not a version: ignored, as TF Serving does
    out = str(out)
    with pytest.raises(FileExistsError, match="export a new version"):
        export.export_experiment(experiments["vae"], out, "fmnist", 5)
    with pytest.raises(ValueError, match="TF Serving URL"):
        export.export_experiment(experiments["vae"], out, "bad/name")
    with pytest.raises(ValueError, match="positive"):
        export.export_experiment(experiments["vae"], out, "fmnist", 0)
    path = export.export_experiment(experiments["vae"], out, "fmnist")
    assert path == os.path.join(out, "fmnist", "6")
    # No temporary folder is left behind: a polling server only ever sees whole versions.
    assert sorted(os.listdir(os.path.join(out, "fmnist"))) == ["1", "5", "6", "notes"]
    assert export.exported_models(out) == {"fmnist": [1, 5, 6]}
    with open(os.path.join(out, export.MODELS_CONFIG)) as f:
        text = f.read()
    assert parse_models_config(text) == [
        {"name": "fmnist", "base_path": "/models/fmnist", "model_platform": "tensorflow",
         "model_version_policy": {"all": {}}},
    ]  # fmt: skip


def test_models_config_parses_with_tf_serving_protos(smoke):
    models, _ = smoke
    with open(os.path.join(models, export.MODELS_CONFIG)) as f:
        text = f.read()
    expected = [
        {"name": n, "base_path": f"/models/{n}", "model_platform": "tensorflow",
         "model_version_policy": {"all": {}}}
        for n in ("dpvae", "vae")
    ]  # fmt: skip
    assert parse_models_config(text) == expected
    # tensorflow-serving-api is a test dependency (pyproject's [test] extra): no fallback.
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    parsed = [
        {"name": c.name, "base_path": c.base_path, "model_platform": c.model_platform,
         "model_version_policy": {c.model_version_policy.WhichOneof("policy_choice"): {}}}
        for c in config.model_config_list.config
    ]  # fmt: skip
    assert parsed == expected


def parse_models_config(text: str) -> list[dict]:
    """A strict parser for the subset of ModelServerConfig text protos tfvae writes.

    Fails on any field outside ``model_config_list { config { name base_path model_platform
    model_version_policy { all | latest | specific } } }``, on a repeated scalar and on
    unbalanced braces.
    """
    schema = {
        (): {"model_config_list"},
        ("model_config_list",): {"config"},
        ("model_config_list", "config"): {
            "name", "base_path", "model_platform", "model_version_policy",
        },
        ("model_config_list", "config", "model_version_policy"): {"all", "latest", "specific"},
        ("model_config_list", "config", "model_version_policy", "all"): set(),
    }  # fmt: skip
    tokens = re.findall(r'"(?:[^"\\]|\\.)*"|[A-Za-z_][A-Za-z0-9_]*|[{}:]|\S', text)
    configs, stack, node, i = [], [], {}, 0
    nodes = [node]
    while i < len(tokens):
        tok = tokens[i]
        if tok == "}":
            assert stack, "unbalanced '}'"
            stack.pop()
            nodes.pop()
            i += 1
            continue
        allowed = schema[tuple(stack)]
        assert tok in allowed, f"unexpected field {tok!r} in {'.'.join(stack) or 'top level'}"
        if tokens[i + 1] == "{":
            child = {}
            if tok == "config":
                configs.append(child)
            else:
                assert tok not in nodes[-1], f"repeated {tok}"
                nodes[-1][tok] = child
            stack.append(tok)
            nodes.append(child)
            i += 2
        else:
            assert tokens[i + 1] == ":" and tokens[i + 2].startswith('"'), f"bad value for {tok}"
            assert tok not in nodes[-1], f"repeated {tok}"
            nodes[-1][tok] = json.loads(tokens[i + 2])
            i += 3
    assert not stack, "unbalanced '{'"
    return configs


AR_SHAPE = (8, 8, 1)  # 64 sequential pixel steps keep the autoregressive test fast


def _pixelcnn_model():
    config = load_config(os.path.join(REPO, "configs/vae.py") + ":smoke")
    net = ml_collections.ConfigDict
    with config.unlocked():
        config.model.encoder = net({"name": "mlp", "options": {"hidden_sizes": (16,)}})
        config.model.decoder = net(
            {"name": "pixelcnn", "options": {"channels": 8, "kernel_sizes": (5, 3, 3)}}
        )
        config.model.likelihood = net({"name": "bernoulli", "options": {}})
        config.model.prior = net(
            {"name": "decoupled", "options": {"num_blocks": 2, "hidden_units": (8,)}}
        )
    model = build_model(config, AR_SHAPE, 100)
    model(tf.zeros([1, *AR_SHAPE]))
    model.prior.build(None)
    return model


def test_autoregressive_decoder_exports_with_seeded_pixel_sampling(tmp_path):
    model = _pixelcnn_model()
    path = export.export_model(model, str(tmp_path), "pixelcnn")
    sigs = tf.saved_model.load(path).signatures
    d = model.latent_dim
    assert _signature_specs(sigs["decode"])[0] == {
        "z": (tf.float32, (None, d)),
        "seed": (tf.int64, (None,)),
    }
    seeds = tf.constant([4, 9, 4], tf.int64)
    images = sigs["generate"](seed=seeds)["images"].numpy()
    assert images.shape == (3, *AR_SHAPE)
    assert set(np.unique(images)) <= {0.0, 1.0}
    np.testing.assert_array_equal(images[0], images[2])
    assert np.any(images[0] != images[1])
    # The documented recipe: z0 from [seed, 0], pixel uniforms from [seed, 1].
    seed_pairs = [tf.constant([s, k], tf.int64) for s in (4, 9, 4) for k in (0, 1)]
    eps = tf.stack([tf.random.stateless_normal([d], p, alg="philox") for p in seed_pairs[0::2]])
    u = tf.stack([tf.random.stateless_uniform(AR_SHAPE, p, alg="philox") for p in seed_pairs[1::2]])
    want = model.decoder.sample_with_uniforms(model.prior.from_z0(eps), u).numpy()
    np.testing.assert_array_equal(images, want)
    z = tf.constant(np.random.default_rng(1).normal(size=(3, d)), tf.float32)
    decoded = sigs["decode"](z=z, seed=seeds)["images"].numpy()
    np.testing.assert_array_equal(decoded, model.decoder.sample_with_uniforms(z, u).numpy())
    decoded_z0 = sigs["decode_z0"](z0=eps, seed=seeds)["images"].numpy()
    np.testing.assert_array_equal(decoded_z0, images)
    x = tf.constant(images)
    np.testing.assert_allclose(
        sigs["reconstruct"](images=x)["images"].numpy(),
        model.reconstruct(x).numpy(),
        rtol=1e-4,
        atol=1e-5,
    )


def test_fresh_process_matches_in_memory_model_for_every_signature(smoke, background):
    models, experiments = smoke
    stdout, stderr, code = background.result("fresh")
    assert code == 0, stderr[-3000:]
    # Serving needs neither tfvae nor TFP: the exported graph holds TensorFlow ops only.
    assert "LEAKED []" in stdout
    for name, exp in experiments.items():
        inputs = background.inputs[name]
        got = dict(np.load(background.work / f"{name}_out.npz"))
        want = _reference(exp, inputs)
        assert set(got) - {"serving_default/images"} == set(want)
        for key, value in want.items():
            np.testing.assert_allclose(got[key], value, rtol=1e-4, atol=1e-5, err_msg=key)
        np.testing.assert_array_equal(got["serving_default/images"], got["generate/images"])
        # The same seeds give bit-identical images here too (another process, a "replica").
        sigs = tf.saved_model.load(os.path.join(models, name, "1")).signatures
        here = sigs["generate"](seed=tf.constant(inputs["seed"]))["images"].numpy()
        np.testing.assert_array_equal(here, got["generate/images"])


def test_saved_model_cli_show_and_run(smoke, background):
    models, _ = smoke
    for key in ("show", "run"):
        _, stderr, code = background.result(key)
        assert code == 0, stderr[-3000:]
    show = background.result("show")[0]
    for sig in ("generate", "generate_with_temperature", "decode", "decode_z0", "encode",
                "reconstruct", "serving_default"):  # fmt: skip
        assert f"signature_def['{sig}']" in show
    assert re.search(r"inputs\['seed'\] tensor_info:\s+dtype: DT_INT64\s+shape: \(-1\)", show)
    images_spec = r"inputs\['images'\] tensor_info:\s+dtype: DT_FLOAT\s+shape: \(-1, 28, 28, 1\)"
    assert re.search(images_spec, show)
    images = np.load(background.work / "cli_out" / "images.npy")
    sigs = tf.saved_model.load(os.path.join(models, "dpvae", "1")).signatures
    want = sigs["generate"](seed=tf.constant(CLI_SEEDS))["images"].numpy()
    np.testing.assert_array_equal(images, want)


def test_export_command(smoke, background):
    """``python -m tfvae.export`` with --workdir, --name, --version, --export_dir and
    --config_base_path writes TF Serving's layout and a models.config for that base path."""
    models, experiments = smoke
    stdout, stderr, code = background.result("export")
    assert code == 0, stderr[-3000:]
    out = background.work / "cli_models"
    version = out / "cli_vae" / "3"
    assert f"exported {os.path.join('cli_models', 'cli_vae', '3')} " in stdout
    assert sorted(os.listdir(out)) == ["cli_vae", export.MODELS_CONFIG]
    assert os.listdir(out / "cli_vae") == ["3"]  # no temporary folder left behind
    assert (version / "saved_model.pb").is_file()
    assert (version / "variables" / "variables.index").is_file()
    info = json.loads((version / export.EXPORT_INFO).read_text())
    vae = experiments["vae"]
    assert (info["name"], info["version"], info["step"]) == ("cli_vae", 3, vae.step)
    assert info["workdir"] == os.path.abspath(vae.workdir)
    assert parse_models_config((out / export.MODELS_CONFIG).read_text()) == [
        {"name": "cli_vae", "base_path": f"{CLI_BASE_PATH}/cli_vae",
         "model_platform": "tensorflow", "model_version_policy": {"all": {}}},
    ]  # fmt: skip
    # The workdir's trained model: the same outputs as the smoke export of that workdir.
    seeds = tf.constant([1, 2, 3], tf.int64)
    got = tf.saved_model.load(str(version)).signatures["generate"](seed=seeds)["images"]
    smoke_sig = tf.saved_model.load(os.path.join(models, "vae", "1")).signatures["generate"]
    np.testing.assert_array_equal(got.numpy(), smoke_sig(seed=seeds)["images"].numpy())


def test_export_command_refuses_an_existing_version_in_one_line(smoke, background):
    models, _ = smoke
    _, stderr, code = background.result("export_exists")
    assert code == 2, stderr[-3000:]
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "export a new version" in last, stderr[-3000:]
    assert os.path.join(models, "vae", "1") in last
    assert sorted(os.listdir(os.path.join(models, "vae"))) == ["1"]


def test_docker_compose_serves_the_export_folder():
    """export/docker-compose.yml mounts the folder ``tfvae.export`` writes to (by default) where
    the written models.config points, and reads that models.config."""
    import yaml  # PyYAML: a dependency of ml-collections, itself a tfvae dependency

    with open(os.path.join(REPO, "export", "docker-compose.yml")) as f:
        compose = yaml.safe_load(f)
    [service] = compose["services"].values()
    assert service["image"].startswith("tensorflow/serving:"), service["image"]
    assert {"8500:8500", "8501:8501"} <= set(service["ports"])
    mounts = {}
    for volume in service["volumes"]:
        source, target, *mode = volume.split(":")
        mounts[target] = (os.path.normpath(os.path.join(REPO, "export", source)), mode)
    base = export.DEFAULT_CONFIG_BASE_PATH
    assert mounts[base] == (os.path.join(REPO, export.DEFAULT_EXPORT_DIR), ["ro"]), mounts
    # The base paths in models.config lie under the mount: /models/<name>.
    assert f'base_path: "{base}/vae"' in export.models_config_text(["vae"])
    flags = dict(arg.lstrip("-").split("=", 1) for arg in service["command"])
    assert flags["model_config_file"] == f"{base}/{export.MODELS_CONFIG}"
    assert int(flags["model_config_file_poll_wait_seconds"]) > 0
