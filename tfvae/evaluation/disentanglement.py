"""The disentanglement metrics of disentanglement_lib (Locatello et al. 2019), on the encoder mean.

Every metric sees the data only through the factor API (``tfvae.factors.FactorData``:
``factor_sizes``, ``sample_factors``, ``images``) and the model only through ``represent``,
a function from ``[n, H, W, C]`` uint8 images to ``[n, d]`` codes. ``disentanglement_metric``
runs them on z_mean and, for decoupled priors, separately on z0 = g(z_mean) (keys ``*_z0``).

Settings are disentanglement_lib's ``unsupervised_study_v1`` ones (``Settings``), with two
differences, both for time on a 2-core CPU (the whole suite must run in minutes, theirs ran on
GPUs):
  * BetaVAE and FactorVAE scores: 500 training and 250 evaluation points (theirs 10,000 and
    5,000). Each point costs a batch of 64 (BetaVAE: two) encoded images, so theirs is 1.9 M
    (BetaVAE) + 1 M (FactorVAE) encoder passes, hours on this CPU at about 1 ms per image;
    ours is 20x fewer. The evaluation accuracy of 250 points has a standard error of at most
    3 points.
  * DCI's importances come from a random forest (10 bagged trees of all features, leaves of
    at least 10; Eastwood and Williams [5] used random forests and lasso) instead of
    scikit-learn's GradientBoostingClassifier, which grows 100 trees per class and stage: 4,000
    trees for dSprites' 40 orientations, 107 s for 2,000 points here, so about 10 minutes per
    model at 10,000. ``Settings(dci_model="gradient_boosting")`` is theirs.
  * The iid-sample metrics (MIG, SAP, DCI, modularity / explicitness, the unsupervised scores)
    share one set of ``num_train`` + ``num_test`` encoded samples instead of drawing their own.
Everything else is theirs: 20 equal-width histogram bins per code dimension (MIG, modularity,
mutual-information score), LinearSVC(C=0.01, balanced) per (code, factor) pair for SAP,
a classifier per factor for DCI, LogisticRegression on
standardized codes with one-vs-rest ROC-AUC for explicitness, a majority-vote classifier on
the argmin of variance-normalized codes (dimensions with variance < 0.05 pruned) for
FactorVAE, LogisticRegression on mean absolute differences of paired batches for BetaVAE.
All randomness comes from ``np.random.default_rng([seed, stream])`` and scikit-learn's
``random_state`` from the same seed.

References:
  [1] Higgins et al. beta-VAE. ICLR 2017 (BetaVAE score).
  [2] Kim and Mnih. Disentangling by Factorising. ICML 2018 (FactorVAE score).
  [3] Chen et al. Isolating Sources of Disentanglement in VAEs. NeurIPS 2018 (MIG).
  [4] Kumar et al. Variational Inference of Disentangled Latent Concepts. ICLR 2018 (SAP).
  [5] Eastwood and Williams. A Framework for the Quantitative Evaluation of Disentangled
      Representations. ICLR 2018 (DCI).
  [6] Ridgeway and Mozer. Learning Deep Disentangled Embeddings with the F-Statistic Loss.
      NeurIPS 2018 (modularity, explicitness).
  [7] Locatello et al. Challenging Common Assumptions in the Unsupervised Learning of
      Disentangled Representations. ICML 2019 (the unsupervised scores, the settings).
"""

import dataclasses
from collections.abc import Callable

import numpy as np
import scipy.linalg
import scipy.stats
from sklearn import ensemble, linear_model, svm
from sklearn import metrics as sk_metrics

Represent = Callable[[np.ndarray], np.ndarray]  # [n, H, W, C] uint8 -> [n, d] codes

# Independent random streams per metric (numpy seeds [seed, stream]).
_BETA_VAE, _FACTOR_VAE, _SAMPLES_TRAIN, _SAMPLES_TEST = 101, 102, 103, 104


@dataclasses.dataclass(frozen=True)
class Settings:
    """Sample counts and hyperparameters (module docstring: where they differ from
    disentanglement_lib's)."""

    batch_size: int = 64
    vote_train: int = 500
    vote_eval: int = 250
    num_variance_estimate: int = 10_000
    prune_threshold: float = 0.05
    num_train: int = 10_000
    num_test: int = 5_000
    num_bins: int = 20
    sap_c: float = 0.01
    dci_model: str = "random_forest"
    seed: int = 0


def _rng(settings: Settings, stream: int) -> np.random.Generator:
    return np.random.default_rng([settings.seed, stream])


def sample_codes(data, represent: Represent, n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uniform factor draws ``[n, K]`` and the codes of their images ``[n, d]``."""
    factors = data.sample_factors(n, rng)
    return factors, np.asarray(represent(data.images(factors)), np.float64)


# ----------------------------------------------------------------------------- helpers


def discretize(codes: np.ndarray, num_bins: int) -> np.ndarray:
    """Per dimension, the index of its equal-width histogram bin (``[n, d]`` int)."""
    out = np.zeros(codes.shape, np.int64)
    for i in range(codes.shape[1]):
        edges = np.histogram(codes[:, i], num_bins)[1][:-1]
        out[:, i] = np.digitize(codes[:, i], edges)
    return out


def discrete_mutual_info(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``[da, db]`` mutual information (nats) between the columns of ``a [n, da]`` and
    ``b [n, db]`` (plug-in estimate)."""
    return np.array(
        [
            [sk_metrics.mutual_info_score(b[:, j], a[:, i]) for j in range(b.shape[1])]
            for i in range(a.shape[1])
        ]
    )


def discrete_entropy(y: np.ndarray) -> np.ndarray:
    """``[K]`` entropies (nats) of the columns of ``y [n, K]``."""
    return np.array([sk_metrics.mutual_info_score(y[:, k], y[:, k]) for k in range(y.shape[1])])


def _normalize(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, std = train.mean(0), train.std(0)
    std = np.where(std > 0, std, 1.0)
    return (train - mean) / std, (test - mean) / std


# ----------------------------------------------------------------------------- vote scores


def beta_vae_score(data, represent: Represent, settings: Settings = Settings()) -> dict:
    """BetaVAE score [1]: accuracy of a linear classifier that names the factor held fixed
    in a pair of batches from the mean absolute difference of their codes."""
    rng = _rng(settings, _BETA_VAE)

    def points(n):
        x, y = [], []
        for _ in range(n):
            k = int(rng.integers(data.num_factors))
            f1 = data.sample_factors(settings.batch_size, rng)
            f2 = data.sample_factors(settings.batch_size, rng)
            f2[:, k] = f1[:, k]
            z = represent(data.images(np.concatenate([f1, f2])))  # [2B, d]
            x.append(np.mean(np.abs(z[: len(f1)] - z[len(f1) :]), axis=0))
            y.append(k)
        return np.array(x), np.array(y)

    x_train, y_train = points(settings.vote_train)
    x_eval, y_eval = points(settings.vote_eval)
    model = linear_model.LogisticRegression(random_state=settings.seed, max_iter=1000)
    model.fit(x_train, y_train)
    return {
        "beta_vae_train": float(np.mean(model.predict(x_train) == y_train)),
        "beta_vae": float(np.mean(model.predict(x_eval) == y_eval)),
    }


def factor_vae_score(data, represent: Represent, settings: Settings = Settings()) -> dict:
    """FactorVAE score [2]: accuracy of the majority-vote classifier from the dimension of
    least normalized variance, in batches with one factor fixed, to that factor."""
    rng = _rng(settings, _FACTOR_VAE)
    _, codes = sample_codes(data, represent, settings.num_variance_estimate, rng)
    scale = np.std(codes, axis=0, ddof=1)  # [d]
    active = scale**2 >= settings.prune_threshold
    if not active.any():
        return {"factor_vae_train": 0.0, "factor_vae": 0.0, "factor_vae_active_dims": 0.0}

    def votes(n):
        counts = np.zeros((codes.shape[1], data.num_factors), np.int64)  # [d, K]
        for _ in range(n):
            k = int(rng.integers(data.num_factors))
            f = data.sample_factors(settings.batch_size, rng)
            f[:, k] = f[0, k]
            z = represent(data.images(f)) / scale  # [B, d]
            var = np.var(z, axis=0, ddof=1)
            counts[np.argmin(np.where(active, var, np.inf)), k] += 1
        return counts

    train, evaluation = votes(settings.vote_train), votes(settings.vote_eval)
    classifier = np.argmax(train, axis=1)  # [d]
    return {
        "factor_vae_train": float(train.max(axis=1).sum() / train.sum()),
        "factor_vae": float(evaluation[np.arange(len(classifier)), classifier].sum())
        / evaluation.sum(),
        "factor_vae_active_dims": float(active.sum()),
    }


# ----------------------------------------------------------------------------- iid scores


def mig(codes: np.ndarray, factors: np.ndarray, num_bins: int = 20) -> dict:
    """Mutual information gap [3]: per factor, the gap between the two code dimensions most
    informative about it, over its entropy, averaged over factors."""
    mi = discrete_mutual_info(discretize(codes, num_bins), factors)  # [d, K]
    top = np.sort(mi, axis=0)[::-1]
    return {"mig": float(np.mean((top[0] - top[1]) / discrete_entropy(factors)))}


def sap(codes, factors, test_codes, test_factors, c: float = 0.01, seed: int = 0) -> dict:
    """SAP [4]: per factor, the gap between the two code dimensions whose single-dimension
    linear classifiers predict it best (test accuracy), averaged over factors."""
    d, k = codes.shape[1], factors.shape[1]
    score = np.zeros((d, k))
    for i in range(d):
        for j in range(k):
            model = svm.LinearSVC(C=c, class_weight="balanced", random_state=seed)
            model.fit(codes[:, i : i + 1], factors[:, j])
            score[i, j] = np.mean(model.predict(test_codes[:, i : i + 1]) == test_factors[:, j])
    top = np.sort(score, axis=0)[::-1]
    return {"sap": float(np.mean(top[0] - top[1]))}


def dci_from_importance(importance: np.ndarray) -> tuple[float, float]:
    """Disentanglement and completeness [5] of an ``[d, K]`` importance matrix."""
    d, k = importance.shape
    per_code = 1.0 - scipy.stats.entropy(importance.T + 1e-11, base=k)  # [d]
    per_factor = 1.0 - scipy.stats.entropy(importance + 1e-11, base=d)  # [K]
    weights = importance if importance.sum() > 0 else np.ones_like(importance)
    code_weight = weights.sum(axis=1) / weights.sum()
    factor_weight = weights.sum(axis=0) / weights.sum()
    return float(np.sum(per_code * code_weight)), float(np.sum(per_factor * factor_weight))


DCI_MODELS = ("random_forest", "gradient_boosting")


def _dci_model(kind: str, seed: int):
    if kind == "gradient_boosting":  # disentanglement_lib's: 100 trees per class and stage
        return ensemble.GradientBoostingClassifier(random_state=seed)
    if kind == "random_forest":  # Eastwood and Williams' own choice, one tree for all classes
        return ensemble.RandomForestClassifier(
            n_estimators=10, max_features=None, min_samples_leaf=10, random_state=seed
        )
    raise ValueError(f"Unknown DCI model {kind!r}. Valid: {', '.join(DCI_MODELS)}.")


def dci(
    codes, factors, test_codes, test_factors, seed: int = 0, model: str = "random_forest"
) -> dict:
    """DCI [5]: disentanglement, completeness, informativeness (test accuracy, averaged over
    factors), with importances from ``model`` (``DCI_MODELS``; module docstring)."""
    importance = np.zeros((codes.shape[1], factors.shape[1]))
    train_acc, test_acc = [], []
    kind = model
    for j in range(factors.shape[1]):
        model = _dci_model(kind, seed)
        model.fit(codes, factors[:, j])
        importance[:, j] = np.abs(model.feature_importances_)
        train_acc.append(np.mean(model.predict(codes) == factors[:, j]))
        test_acc.append(np.mean(model.predict(test_codes) == test_factors[:, j]))
    disentanglement, completeness = dci_from_importance(importance)
    return {
        "dci_disentanglement": disentanglement,
        "dci_completeness": completeness,
        "dci_informativeness_train": float(np.mean(train_acc)),
        "dci_informativeness": float(np.mean(test_acc)),
    }


def modularity_score(mi: np.ndarray) -> float:
    """Modularity [6] of an ``[d, K]`` mutual-information matrix: 1 minus the normalized
    squared deviation of each code's MI row from a template with only its largest entry."""
    sq = np.square(mi)
    top = sq.max(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = 1.0 - (sq.sum(axis=1) - top) / (top * (sq.shape[1] - 1.0))
    return float(np.mean(np.where(top == 0.0, 0.0, score)))


def _one_vs_rest_auc(y: np.ndarray, p: np.ndarray, classes: np.ndarray) -> float:
    """Mean over classes of the ROC-AUC of ``p[:, c]`` for ``y == c`` (macro average, as
    disentanglement_lib's ``roc_auc_score`` on one-hot labels); classes absent from ``y`` (or
    all of it) are left out, where disentanglement_lib would fail on small test sets."""
    aucs = [
        sk_metrics.roc_auc_score(y == c, p[:, i])
        for i, c in enumerate(classes)
        if 0 < np.sum(y == c) < len(y)
    ]
    return float(np.mean(aucs)) if aucs else float("nan")


def modularity_explicitness(
    codes, factors, test_codes, test_factors, num_bins: int = 20, seed: int = 0
) -> dict:
    """Modularity and explicitness [6] (explicitness: mean one-vs-rest ROC-AUC of a logistic
    regression from all standardized codes to each factor)."""
    mi = discrete_mutual_info(discretize(codes, num_bins), factors)
    train, test = _normalize(codes, test_codes)
    auc_train, auc_test = [], []
    for j in range(factors.shape[1]):
        model = linear_model.LogisticRegression(random_state=seed, max_iter=1000)
        model.fit(train, factors[:, j])
        for x, y, out in ((train, factors[:, j], auc_train), (test, test_factors[:, j], auc_test)):
            out.append(_one_vs_rest_auc(y, model.predict_proba(x), model.classes_))
    return {
        "modularity": modularity_score(mi),
        "explicitness_train": float(np.mean(auc_train)),
        "explicitness": float(np.mean(auc_test)),
    }


def gaussian_total_correlation(cov: np.ndarray) -> float:
    """KL(N(0, S) || N(0, diag S)) = (sum_i log S_ii - log det S) / 2 (nats)."""
    return float(0.5 * (np.sum(np.log(np.diag(cov))) - np.linalg.slogdet(cov)[1]))


def gaussian_wasserstein_correlation(cov: np.ndarray) -> float:
    """W2^2(N(0, S), N(0, diag S)) = 2 tr S - 2 tr (S diag S)^(1/2)."""
    root = scipy.linalg.sqrtm(cov * np.diag(cov)[None, :])
    return float(2.0 * np.trace(cov) - 2.0 * np.real(np.trace(root)))


def unsupervised_scores(codes: np.ndarray, num_bins: int = 20) -> dict:
    """The unsupervised scores of [7] on ``[n, d]`` codes: Gaussian total correlation,
    Gaussian Wasserstein correlation (raw and over tr S), mean pairwise discrete MI."""
    cov = np.cov(codes, rowvar=False)
    d = codes.shape[1]
    mi = discrete_mutual_info(*(2 * [discretize(codes, num_bins)]))
    np.fill_diagonal(mi, 0.0)
    wc = gaussian_wasserstein_correlation(cov)
    return {
        "gaussian_total_correlation": gaussian_total_correlation(cov),
        "gaussian_wasserstein_correlation": wc,
        "gaussian_wasserstein_correlation_norm": wc / float(np.trace(cov)),
        "mutual_info_score": float(mi.sum() / (d * d - d)) if d > 1 else 0.0,
    }


# ----------------------------------------------------------------------------- the suite

METRIC_FUNCTIONS = ("beta_vae", "factor_vae", "mig", "sap", "dci", "modularity", "unsupervised")


def iid_samples(data, represent: Represent, settings: Settings) -> dict:
    """The shared train / test samples of the iid-sample metrics."""
    f_train, z_train = sample_codes(
        data, represent, settings.num_train, _rng(settings, _SAMPLES_TRAIN)
    )
    f_test, z_test = sample_codes(data, represent, settings.num_test, _rng(settings, _SAMPLES_TEST))
    return {"codes": z_train, "factors": f_train, "test_codes": z_test, "test_factors": f_test}


def score(name: str, data, represent: Represent, settings: Settings, samples=None) -> dict:
    """One metric family ``name`` (a ``METRIC_FUNCTIONS`` entry); ``samples``: the
    ``iid_samples`` (computed here when None and needed)."""
    if name == "beta_vae":
        return beta_vae_score(data, represent, settings)
    if name == "factor_vae":
        return factor_vae_score(data, represent, settings)
    s = samples if samples is not None else iid_samples(data, represent, settings)
    train, test = (s["codes"], s["factors"]), (s["test_codes"], s["test_factors"])
    if name == "mig":
        return mig(*train, settings.num_bins)
    if name == "sap":
        return sap(*train, *test, c=settings.sap_c, seed=settings.seed)
    if name == "dci":
        return dci(*train, *test, seed=settings.seed, model=settings.dci_model)
    if name == "modularity":
        return modularity_explicitness(*train, *test, settings.num_bins, seed=settings.seed)
    if name == "unsupervised":
        return unsupervised_scores(s["codes"], settings.num_bins)
    raise KeyError(name)


# ----------------------------------------------------------------------------- evaluation glue
# Kept below the metric math: these read an EvalContext (``tfvae.evaluation.context``).


def settings_for(options) -> Settings:
    """``Settings`` for ``EvalOptions``: ``num_disentanglement`` iid training samples (test:
    half), a twentieth and a fortieth of it as BetaVAE / FactorVAE points, seeded by ``seed``."""
    n = options.num_disentanglement
    return Settings(
        num_train=n,
        num_test=max(n // 2, 2),
        vote_train=max(n // 20, 2),
        vote_eval=max(n // 40, 2),
        num_variance_estimate=n,
        seed=options.seed,
    )


def _factor_data(ctx):
    from tfvae.evaluation.options import MetricUndefined

    data = getattr(ctx.data, "factors", None)
    if data is None:
        raise MetricUndefined(
            f"Disentanglement metrics need data with known factors (dsprites); "
            f"{ctx.config.data.name} has none."
        )
    return data


def _spaces(ctx) -> dict[str, Represent]:
    """The representations measured: z_mean, and for decoupled priors z0 = g(z_mean).

    Codes are remembered by a hash of the images: the z0 pass draws the same factors (same
    random streams) and so reuses the z pass's encodings instead of running the encoder again.
    """
    import hashlib

    import tensorflow as tf

    from tfvae import data as data_lib

    def compute():
        encode = tf.function(
            lambda x: ctx.model.encode(x)[0], reduce_retracing=True, autograph=False
        )
        return encode, {}

    encode, memo = ctx._shared("disentanglement_encoder", compute)

    def z(images):
        key = hashlib.blake2b(np.ascontiguousarray(images).tobytes(), digest_size=16).digest()
        if key not in memo:
            bs = ctx.options.batch_size
            memo[key] = np.concatenate(
                [
                    encode(data_lib.to_float(images[i : i + bs])).numpy()
                    for i in range(0, len(images), bs)
                ]
            )
        return memo[key]

    spaces = {"": z}
    if ctx.is_decoupled:
        spaces["_z0"] = lambda images: ctx.to_z0(z(images))
    return spaces


def make_metric(name: str) -> Callable:
    """The ``METRICS`` function of metric family ``name``: its scores on z (and ``*_z0``)."""

    def metric(ctx):
        from tfvae.evaluation.options import MetricResult

        data = _factor_data(ctx)
        settings = settings_for(ctx.options)
        result = MetricResult(details={"settings": dataclasses.asdict(settings)})
        for suffix, represent in _spaces(ctx).items():
            samples = None
            if name not in ("beta_vae", "factor_vae"):
                samples = ctx._shared(
                    f"disentanglement_samples{suffix}",
                    lambda r=represent: iid_samples(data, r, settings),
                )
            scores = score(name, data, represent, settings, samples)
            result.scalars.update({key + suffix: float(v) for key, v in scores.items()})
        return result

    metric.__name__ = f"{name}_metric"
    return metric


def traversals_metric(ctx):
    """Latent traversals per dimension around an encoded test image, as disentanglement_lib
    draws them: a still grid (a row per dimension, ``traversal_steps`` values over
    [-r, r] in the latent space of ``ctx.latent_space``) and an animated GIF whose frame t
    shows every dimension at value t."""
    from PIL import Image

    from tfvae.evaluation.options import MetricResult
    from tfvae.images import save_image_grid, tile_images, to_uint8
    from tfvae.traversals import single_dimension_codes

    ctx.require_images("Traversals")
    o = ctx.options
    x = ctx.eval_inputs(1, binarize=True)
    code = ctx.encode_mean(x)[0]  # [d]
    if ctx.is_decoupled:
        code = ctx.to_z0(code[None])[0]
    d, steps = ctx.latent_dim, o.traversal_steps
    r = o.traversal_range
    codes = single_dimension_codes(d, low=-r, high=r, steps=steps, center=code)  # [d, steps, d]
    flat = codes.reshape(d * steps, d)
    if ctx.is_decoupled:
        flat = ctx.from_z0(flat)
    images = np.clip(ctx.decode(flat), 0.0, 1.0).reshape(d, steps, *ctx.data.shape)
    path, rel = ctx.figure_path("disentanglement_traversals")
    save_image_grid(images.reshape(d * steps, *ctx.data.shape), steps, path)
    frames = []
    for t in list(range(steps)) + list(range(steps - 2, 0, -1)):  # there and back
        frame = tile_images(images[:, t], d)
        frames.append(Image.fromarray(to_uint8(np.repeat(np.repeat(frame, 2, 0), 2, 1))))
    gif_rel = rel[: -len(".png")] + ".gif"
    frames[0].save(
        path[: -len(".png")] + ".gif", save_all=True, append_images=frames[1:], duration=150, loop=0
    )
    return MetricResult(
        # The GIF is named in details, not figures: TensorBoard gets the PNG grid.
        details={
            "space": ctx.latent_space,
            "values": np.linspace(-r, r, steps).tolist(),  # as the codes take them
            "gif": gif_rel,
        },
        figures={"disentanglement_traversals": rel},
    )
