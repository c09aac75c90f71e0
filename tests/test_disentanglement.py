"""The disentanglement metrics on a tiny factor dataset, against closed forms and invariants
(as disentanglement_lib's tests): a perfect representation (and a monotone map of it) scores
the maximum, noise scores chance, rotation costs MIG and DCI disentanglement but not
informativeness, a duplicated factor has the hand-computed MIG, Gaussian TC is its closed form."""

import json

import numpy as np
import pytest
import tensorflow as tf

from tfvae import factors
from tfvae.evaluation import disentanglement as dis

SIZES = (3, 4, 5, 6)
K = len(SIZES)
SETTINGS = dis.Settings(
    vote_train=200, vote_eval=100, num_variance_estimate=1000, num_train=1000, num_test=500
)


class TinyFactors(factors.FactorData):
    """Every grid cell's 'image' is its factor vector, ``[1, 1, K]`` uint8."""

    def __init__(self):
        super().__init__([f"f{k}" for k in range(K)], SIZES, (1, 1, K))

    def gather(self, index):
        return tf.cast(self._unravel_tf(index), tf.uint8)[:, None, None, :]


DATA = TinyFactors()


def _factors(x):
    return x.reshape(len(x), K).astype(np.float64)  # [n, K]


def perfect(x):
    return _factors(x)


def monotone(x):
    # A different monotone map per dimension, with distinct values kept more than one MIG bin
    # apart and variances above FactorVAE's absolute pruning threshold (0.05).
    f = _factors(x)
    return np.stack(
        [3 * f[:, 0] - 1, f[:, 1] ** 1.5, np.exp(0.3 * f[:, 2]), -10 / (f[:, 3] + 3)], 1
    )


def noise(x):
    rng = np.random.default_rng(int(x.sum()) + len(x))
    return rng.standard_normal((len(x), K))


def rotated(x):  # every pair of dimensions mixed at 45 degrees, after standardizing
    f = (_factors(x) - (np.array(SIZES) - 1) / 2) / np.array(SIZES)
    r = np.array([[1, 1, 0, 0], [1, -1, 0, 0], [0, 0, 1, 1], [0, 0, 1, -1]]) / np.sqrt(2)
    return f @ r.T


def duplicated(x):  # factor 0 in two dimensions
    f = _factors(x)
    return np.concatenate([f[:, :1], f], axis=1)


@pytest.fixture(scope="module")
def scores():
    out = {}
    for name, fn in [("perfect", perfect), ("monotone", monotone), ("noise", noise)]:
        out[name] = {}
        samples = dis.iid_samples(DATA, fn, SETTINGS)
        for metric in dis.METRIC_FUNCTIONS:
            out[name].update(dis.score(metric, DATA, fn, SETTINGS, samples))
    for name, fn in [("rotated", rotated), ("duplicated", duplicated)]:
        samples = dis.iid_samples(DATA, fn, SETTINGS)
        out[name] = {}
        for metric in ("mig", "sap", "dci", "modularity"):
            out[name].update(dis.score(metric, DATA, fn, SETTINGS, samples))
    return out


@pytest.mark.parametrize("name", ["perfect", "monotone"])
def test_perfect_representation_scores_the_maximum(scores, name):
    s = scores[name]
    for key in ("beta_vae", "factor_vae", "dci_informativeness"):
        assert s[key] == 1.0, (key, s[key])
    for key in ("mig", "dci_disentanglement", "dci_completeness", "explicitness", "modularity"):
        assert s[key] > 0.97, (key, s[key])
    # SAP's maximum is below 1: a one-vs-rest linear classifier on one dimension cannot
    # isolate the middle values of a factor, and the runner-up dimension scores chance.
    assert s["sap"] > 0.4 and s["sap"] > 10 * scores["noise"]["sap"]
    assert abs(s["gaussian_total_correlation"]) < 0.01


def test_noise_scores_chance(scores):
    s = scores["noise"]
    assert abs(s["beta_vae"] - 1 / K) < 0.12
    assert abs(s["factor_vae"] - 1 / K) < 0.12
    assert s["mig"] < 0.02 and s["sap"] < 0.05
    assert s["dci_disentanglement"] < 0.25 and s["dci_informativeness"] < 0.45
    assert abs(s["explicitness"] - 0.5) < 0.05


def test_rotation_loses_mig_and_dci_disentanglement_but_not_informativeness(scores):
    p, r = scores["perfect"], scores["rotated"]
    assert r["mig"] < p["mig"] - 0.5 and r["sap"] < p["sap"] - 0.3
    assert r["dci_disentanglement"] < p["dci_disentanglement"] - 0.3
    assert r["dci_informativeness"] > 0.95
    assert abs(r["explicitness"] - p["explicitness"]) < 0.03


def test_duplicated_factor_has_the_hand_computed_mig(scores):
    # Factor 0 has a gap of 0 (two equally informative dimensions), the other K - 1 a gap of
    # their entropy: MIG = (K - 1) / K.
    assert scores["duplicated"]["mig"] == pytest.approx((K - 1) / K, abs=0.01)


def test_gaussian_total_correlation_closed_forms():
    rho = 0.6
    cov = np.array([[2.0, rho * np.sqrt(6)], [rho * np.sqrt(6), 3.0]])
    assert dis.gaussian_total_correlation(cov) == pytest.approx(-0.5 * np.log(1 - rho**2))
    assert dis.gaussian_total_correlation(np.diag([1.0, 4.0, 9.0])) == pytest.approx(0.0)
    # W2^2 between N(0, S) and N(0, diag S) for 2x2: 2 tr S - 2 tr sqrt(S diag S).
    assert dis.gaussian_wasserstein_correlation(np.diag([1.0, 4.0])) == pytest.approx(0.0)
    codes = np.random.default_rng(0).standard_normal((20_000, 5)) * [1, 2, 3, 4, 5]
    s = dis.unsupervised_scores(codes)
    assert abs(s["gaussian_total_correlation"]) < 1e-3 and s["mutual_info_score"] < 0.01


def test_dci_and_modularity_of_known_matrices():
    assert dis.dci_from_importance(np.eye(3)) == pytest.approx((1.0, 1.0))
    assert dis.dci_from_importance(np.ones((3, 3))) == pytest.approx((0.0, 0.0), abs=1e-9)
    assert dis.modularity_score(np.eye(3)) == 1.0
    assert dis.modularity_score(np.ones((2, 3))) == pytest.approx(0.0)


def test_dci_with_disentanglement_libs_gradient_boosting():
    samples = dis.iid_samples(DATA, perfect, dis.Settings(num_train=300, num_test=100))
    s = dis.dci(*samples.values(), model="gradient_boosting")
    assert s["dci_disentanglement"] > 0.95 and s["dci_informativeness"] == 1.0
    with pytest.raises(ValueError, match="Valid: random_forest"):
        dis.dci(*samples.values(), model="lasso")


# ----------------------------------------------------------------------------- end to end
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env():
    env = dict(os.environ, PYTHONPATH=REPO, TF_NUM_INTRAOP_THREADS="1", TF_CPP_MIN_LOG_LEVEL="2")
    env["TF_NUM_INTEROP_THREADS"] = "1"
    return env


@pytest.mark.slow
def test_study_trains_evaluates_and_writes_table_and_figure(tmp_path):
    out = tmp_path / "study"
    cmd = [
        sys.executable,
        "-m",
        "tools.disentanglement_study",
        f"--out={out}",
        "--seeds=0",
        "--smoke",
        "--num_samples=40",
        "--classifier_steps=2",
        f"--feature_cache={tmp_path / 'features'}",
        "--configs=configs/dpvae.py",  # a decoupled prior: z and z0 (the table's split is
    ]  # tested on its own above)
    done = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    table = (out / "table.md").read_text()
    assert "| dpvae | decoupled |" in table and "generation space." in table
    assert (out / "figure.png").stat().st_size > 0
    report = json.loads((out / "dpvae" / "s0" / "metrics.json").read_text())
    for key in ("mig", "mig_z0", "factor_vae", "dci_disentanglement", "fid", "skl"):
        assert key in report["metrics"], key
    assert (out / "dpvae" / "s0" / "figures" / "disentanglement_traversals.gif").exists()
    # Re-running resumes: nothing is trained or evaluated again.
    again = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True)
    assert again.returncode == 0 and again.stdout.count("skipped.") == 1, again.stdout[-2000:]


def test_study_table_reports_z0_and_the_pair_differences():
    from tools import disentanglement_study as study

    def report(prior, mig, fid, mig_z0=None):
        metrics = {"mig": mig, "fid": fid}
        if mig_z0 is not None:
            metrics["mig_z0"] = mig_z0
        return {"prior": prior, "metrics": metrics}

    runs = {
        "vae": [report("standard_normal", 0.1, 50.0), report("standard_normal", 0.2, 52.0)],
        "dpvae": [report("decoupled", 0.3, 40.0, 0.25), report("decoupled", 0.4, 42.0, 0.35)],
        "beta_vae_h": [report("standard_normal", 0.5, 60.0)],
    }
    priors = {name: reports[0]["prior"] for name, reports in runs.items()}
    table = study.format_table(study.summarize(runs), priors, steps=10, seeds=[0, 1], runs=runs)
    rows = {line.split(" | ")[0]: line for line in table.splitlines() if line.startswith("| ")}
    assert "| 0.150 ± 0.071 |" in rows["| vae"] and "| 0.500 |" in rows["| beta_vae_h"]
    z0 = table.split("generation space.")[1]
    assert "| dpvae | decoupled | — | — | 0.300 ± 0.071 |" in z0 and "| vae |" not in z0
    # Welch: MIG 0.35 - 0.15 = +0.2, standard error 0.0707, t = 2.83 on 2 df: p = 0.106.
    assert "| vae / dpvae | — | — | +0.200 (p=0.11) |" in table
    assert "beta_vae_h / beta_dpvae_h" not in table  # no dp run yet


@pytest.mark.slow
@pytest.mark.parametrize("name", __import__("tools.reproduce").reproduce.TABLE1_CONFIGS)
def test_every_table1_config_trains_and_evaluates_on_dsprites(name, tmp_path):
    from tfvae import evaluation, trainer
    from tfvae.config_loader import load_config

    config = load_config(os.path.join(REPO, "configs", f"{name}.py") + ":dsprites,smoke")
    assert config.data.name == "dsprites" and config.model.latent_dim == 10
    assert config.model.encoder.name == "locatello_conv" and config.model.likelihood.name == (
        "bernoulli"
    )
    config.train.num_steps = 2
    workdir = str(tmp_path / name)
    trainer.train_and_evaluate(config, workdir)
    options = evaluation.EvalOptions(
        metrics=("mig", "unsupervised"), verbose=False
    ).with_num_samples(30)
    report = evaluation.evaluate_workdir(workdir, options)
    assert np.isfinite(report["metrics"]["mig"]), report
    assert ("mig_z0" in report["metrics"]) == (config.model.prior.name == "decoupled")


def test_dsprites_config_arguments_set_the_regularization_strength():
    from configs import beta_tcvae, beta_vae_h, factor_vae

    assert beta_vae_h.get_config("dsprites").hparams.beta == 4.0
    assert beta_vae_h.get_config("dsprites,beta=16").hparams.beta == 16.0
    assert factor_vae.get_config("dsprites,gamma=40").hparams.gamma == 40.0
    assert beta_tcvae.get_config("dsprites,beta=10").hparams.to_dict()["gamma"] == 1.0
    with pytest.raises(ValueError, match="Unknown config argument 'betta'"):
        beta_vae_h.get_config("dsprites,betta=2")


@pytest.mark.slow
def test_readme_commands_train_and_evaluate_dsprites(tmp_path):
    # README, section Disentanglement: the two commands, with /tmp/dis in tmp_path.
    workdir = str(tmp_path / "dis")
    py = [sys.executable, "-m"]
    train = [*py, "tfvae.train", "--config=configs/beta_tc_dpvae.py:dsprites,smoke"]
    done = subprocess.run(
        [*train, f"--workdir={workdir}"], cwd=REPO, env=_env(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    evaluate = [*py, "tfvae.evaluate", f"--workdir={workdir}", "--num_samples=40"]
    done = subprocess.run(
        [*evaluate, "--metrics=disentanglement"],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "mig_z0" in done.stdout and "dci_disentanglement" in done.stdout
    report = json.loads(open(os.path.join(workdir, "metrics.json")).read())
    for key in ("beta_vae", "factor_vae", "mig", "sap", "dci_completeness", "modularity"):
        assert key in report["metrics"] and key + "_z0" in report["metrics"]
    assert report["details"]["disentanglement_traversals"]["gif"].endswith(".gif")
    assert os.listdir(os.path.join(workdir, "eval"))  # TensorBoard eval/... summaries
    # A bad name fails in one line, listing the group.
    bad = subprocess.run(
        [*evaluate, "--metrics=mgi"], cwd=REPO, env=_env(), capture_output=True, text=True
    )
    assert bad.returncode == 2 and "disentanglement" in bad.stderr, bad.stderr[-2000:]
    # The data path of the original npz: a missing file is a user error naming the flag.
    missing = subprocess.run(
        [*train, f"--workdir={tmp_path / 'npz'}", f"--config.data.path={tmp_path / 'no.npz'}"],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and "--config.data.path" in missing.stderr, missing.stderr
