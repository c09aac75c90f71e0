"""The base models. One class owns the training step; objectives supply loss terms.

``Autoencoder`` owns ``train_step``, ``test_step``, the loss trackers, encoding, decoding and
sampling. A training step is a list of ``Phase`` s, each one gradient update of some variables
by one named optimizer. A plain VAE objective has a single phase; objectives with an adversary
(FactorVAE, AAE, WAE-GAN, MaskAAE) derive from ``AdversarialAutoencoder`` and list more phases,
so no objective ever writes its own step.

An objective implements ``loss_terms(batches, training) -> dict[str, Tensor]``: per-example
``[B]`` tensors (or scalars for batch-level estimators such as MMD) keyed by the names in its
``terms`` tuple. The base reduces each term once, with a mean over the minibatch.
"""

import contextlib
import dataclasses
from collections.abc import Callable, Sequence

import keras
import tensorflow as tf

from tfvae import losses
from tfvae.errors import InvalidValue
from tfvae.priors import StandardNormalPrior


@dataclasses.dataclass(frozen=True)
class Until:
    """Data-dependent repeats of a phase: update until ``stop`` says so, at most ``max_repeats``.

    The number of updates depends on their losses, so the step runs them one by one from the
    host (``Autoencoder.make_step``): a ``tf.while_loop`` around an optimizer update is
    not supported under a ``tf.distribute`` strategy (its cross-replica merge inside control
    flow). The first update uses the step's batch; every later one a fresh training batch from
    a stream of its own (the training pipeline with ``seed + seed_offset``), so they never
    repeat the step's batches.

    Attributes:
      max_repeats: at most this many updates per step (0: the phase is skipped).
      stop: ``(losses) -> bool``, called after each update with the losses of this step's
        updates so far (replica means, as Python floats); True ends the repeats.
      seed_offset: seed offset of the fresh-batch stream.
      drawn: int64 ``tf.Variable``, fresh batches drawn so far: the stream's resume point
        (its owner must be in the checkpoint).
      log_key: the number of updates is returned in the step's logs under this name.
    """

    max_repeats: int
    stop: Callable[[list[float]], bool]
    seed_offset: int
    drawn: tf.Variable
    log_key: str


@dataclasses.dataclass(frozen=True)
class Phase:
    """One gradient update inside a training step.

    Attributes:
      optimizer: key of the optimizer in ``model.optimizers`` that applies this update; or a
        tuple of keys, when one gradient is split between several optimizers.
      loss_fn: ``(batches, training) -> dict`` of loss terms; must contain ``loss_key``.
      variables: returns the variables this update moves (nothing else changes); with a tuple
        of optimizers, a tuple of lists, one per optimizer.
      loss_key: the term whose minibatch mean is minimized.
      repeats: how many updates of this phase per step (e.g. 5 critic steps).
      until: data-dependent repeats instead (``Until``); ``repeats`` is then unused.
      tracked: whether the terms of the phase's last update go to the loss trackers.
      clipnorm: clip the whole gradient to this global norm before it is split between the
        optimizers (as one optimizer's ``global_clipnorm`` would); None: no joint clip.
    """

    optimizer: str | tuple[str, ...]
    loss_fn: Callable[[Sequence[tf.Tensor], bool], dict]
    variables: Callable[[], list]
    loss_key: str = "loss"
    repeats: int = 1
    until: Until | None = None
    tracked: bool = True
    clipnorm: float | None = None

    def groups(self) -> list[tuple[str, list]]:
        """``(optimizer key, variables)`` pairs, one per optimizer."""
        if isinstance(self.optimizer, str):
            return [(self.optimizer, list(self.variables()))]
        return [(k, list(v)) for k, v in zip(self.optimizer, self.variables(), strict=True)]


@contextlib.contextmanager
def keeping_state(*networks):
    """Inside, ``networks`` run in training mode but keep their batch-norm state.

    A phase moves only its own variables: one that runs another phase's network in training
    mode (e.g. an adversary's phase encoding codes as the autoencoder's phase sees them)
    restores that network's non-trainable variables (moving statistics) on exit. Reads happen
    before and restores after the body, in program order (``tf.function`` orders operations
    on the same variable).
    """
    variables = [v for net in networks for v in net.non_trainable_variables]
    saved = [tf.identity(v) for v in variables]
    yield
    for v, value in zip(variables, saved, strict=True):
        v.assign(value)


class Autoencoder(keras.Model):
    """Base of every tfvae model: q(z|x) encoder, p(x|z) decoder, prior p(z), likelihood.

    Subclasses set:
      terms: the loss-term names they return (one ``keras.metrics.Mean`` each; the same names
        appear in the progress bar and as TensorBoard tags ``train/<name>``, ``val/<name>``).
      optimizer_names: the optimizers ``compile`` must receive.
      batches_per_step: independent minibatches one step consumes (FactorVAE: 2).
      stochastic: whether the encoder outputs (z_mean, z_log_var) (VAEs) or codes (WAE, AAE).

    Args:
      encoder: keras.Model, x -> [B, 2d] (stochastic) or [B, d].
      decoder: keras.Model, z -> likelihood parameters shaped like x; an autoregressive decoder
        (``decoder.autoregressive``) is called as ``decoder([z, x])`` and has ``sample(z, seed)``.
      prior: a prior from ``tfvae.priors``.
      likelihood: a likelihood from ``tfvae.likelihoods``.
      latent_dim: d.
      dataset_size: N, the number of training examples (minibatch estimators need it).
      seed: seeds the model's ``keras.random.SeedGenerator``; all sampling goes through it.
      kl_warmup_start: KL annealing: the KL weight starts here ...
      kl_warmup_steps: ... and rises linearly to 1 over this many steps (0: no annealing).
    """

    terms: tuple[str, ...] = ("loss", "recon", "kl")
    optimizer_names: tuple[str, ...] = ("main",)
    batches_per_step: int = 1
    stochastic: bool = True

    def __init__(
        self,
        *,
        encoder: keras.Model,
        decoder: keras.Model,
        prior: keras.layers.Layer,
        likelihood,
        latent_dim: int,
        dataset_size: int,
        seed: int = 0,
        kl_warmup_start: float = 1.0,
        kl_warmup_steps: int = 0,
        name: str | None = None,
    ):
        super().__init__(name=name)
        self.encoder = encoder
        self.decoder = decoder
        self.prior = prior
        self.likelihood = likelihood
        self.latent_dim = latent_dim
        self.dataset_size = dataset_size
        self.kl_warmup_start = kl_warmup_start
        self.kl_warmup_steps = kl_warmup_steps
        self.seed_generator = keras.random.SeedGenerator(seed, name="seed_generator")
        # SeedGenerator is not trackable itself; its state variable is, and a resumed run
        # must continue the same random stream.
        self.rng_state = self.seed_generator.state
        self.step = self.add_weight(
            shape=(),
            dtype="int64",
            initializer="zeros",
            trainable=False,
            name="step",
            aggregation="only_first_replica",  # every replica counts the same step
        )
        self.trackers = {key: keras.metrics.Mean(name=key) for key in self.terms}
        # Per optimizer: the global norm of the gradient each update receives, before the
        # optimizer clips it (TensorBoard's train/grad_norm/<optimizer>). Not a loss term.
        self.grad_norms = {
            name: keras.metrics.Mean(name=f"grad_norm_{name}") for name in self.optimizer_names
        }
        self.optimizers: dict[str, keras.optimizers.Optimizer] = {}
        # Rearranges the objective's phases (``step_phases``); None: they run as listed.
        self.training_mode = None

    # ------------------------------------------------------------------------------------------
    # Compilation and bookkeeping
    # ------------------------------------------------------------------------------------------
    def compile(self, optimizers: dict, **kwargs):
        """Takes one optimizer per name in ``optimizer_names``."""
        missing = set(self.optimizer_names) - set(optimizers)
        extra = set(optimizers) - set(self.optimizer_names)
        if missing or extra:
            raise InvalidValue(
                f"{type(self).__name__} needs optimizers {sorted(self.optimizer_names)}; got "
                f"{sorted(optimizers)} (missing {sorted(missing)}, unexpected {sorted(extra)})."
            )
        super().compile(optimizer=optimizers["main"], **kwargs)
        self.optimizers = dict(optimizers)

    @property
    def metrics(self):
        # Listed so that Keras (and the trainer) reset them with the model's metrics.
        return list(self.trackers.values()) + list(self.grad_norms.values())

    def build(self, input_shape=None):
        # Sub-networks are built by their first call (``build_all``).
        self.built = True

    @property
    def autoregressive(self) -> bool:
        """Whether the decoder is autoregressive (PixelCNN): teacher-forced on x in
        ``decoder_params``, sampled pixel by pixel in ``decode``."""
        return bool(getattr(self.decoder, "autoregressive", False))

    @property
    def decoupled(self) -> bool:
        """Whether the prior has a generation space z0 distinct from z (the decoupled prior;
        for N(0, I), z0 = z)."""
        return not isinstance(self.prior, StandardNormalPrior)

    def build_all(self, example_batch: tf.Tensor):
        """Creates every variable (model and optimizers) so a checkpoint can be restored."""
        self(example_batch[:1])
        self.prior.build(None)
        # The objective's optimizers and a training mode's (whose phases may leave one unused).
        for phase in self.phases() + self.step_phases():
            for name, variables in phase.groups():
                if not self.optimizers[name].built:
                    self.optimizers[name].build(variables)

    @property
    def autoencoder_variables(self) -> list:
        """Encoder, decoder and prior: what the ELBO-like objective trains."""
        return (
            self.encoder.trainable_variables
            + self.decoder.trainable_variables
            + self.prior.trainable_variables
        )

    def kl_weight(self) -> tf.Tensor:
        """KL annealing: linear from ``kl_warmup_start`` to 1 over ``kl_warmup_steps``."""
        if self.kl_warmup_steps <= 0:
            return tf.constant(1.0)
        frac = tf.cast(self.step, tf.float32) / float(self.kl_warmup_steps)
        start = self.kl_warmup_start
        return tf.minimum(1.0, start + (1.0 - start) * frac)

    # ------------------------------------------------------------------------------------------
    # Encoding, decoding, sampling
    # ------------------------------------------------------------------------------------------
    def encode(self, x: tf.Tensor, training: bool = False):
        """x -> (z_mean, z_log_var), each [B, d]; deterministic encoders return (z, None)."""
        h = tf.cast(self.encoder(x, training=training), tf.float32)  # mixed precision
        if not self.stochastic:
            return h, None
        z_mean, z_log_var = tf.split(h, 2, axis=-1)  # [B, d] each
        return z_mean, z_log_var

    def decoder_params(self, z: tf.Tensor, x: tf.Tensor | None = None, training: bool = False):
        """Likelihood parameters [B, ...]; autoregressive decoders are teacher-forced on x."""
        if self.autoregressive:
            if x is None:
                raise ValueError("An autoregressive decoder needs x for teacher forcing.")
            return tf.cast(self.decoder([z, x], training=training), tf.float32)
        return tf.cast(self.decoder(z, training=training), tf.float32)

    def decode(self, z: tf.Tensor, seed=None) -> tf.Tensor:
        """Images for codes z: the likelihood mean, or a sample for autoregressive decoders."""
        if self.autoregressive:
            return self.decoder.sample(z, seed=self.seed_generator if seed is None else seed)
        return self.likelihood.mean(self.decoder_params(z))

    def generate(self, n: int, temperature: float = 1.0, seed=None) -> tf.Tensor:
        """x ~ p(x|z), z = g^-1(z0), z0 ~ N(0, temperature^2 I)."""
        z0 = temperature * keras.random.normal(
            [n, self.latent_dim], seed=self.seed_generator if seed is None else seed
        )
        return self.decode(self.prior.from_z0(z0), seed=seed)

    def reconstruct(self, x: tf.Tensor) -> tf.Tensor:
        """Decoder mean at the posterior mean (teacher-forced for autoregressive decoders)."""
        z_mean, _ = self.encode(x)
        return self.likelihood.mean(self.decoder_params(z_mean, x))

    def call(self, x, training=False):
        z_mean, _ = self.encode(x, training=training)
        return self.decoder_params(z_mean, x, training=training)

    # ------------------------------------------------------------------------------------------
    # Loss terms
    # ------------------------------------------------------------------------------------------
    def posterior_sample(self, x: tf.Tensor, training: bool) -> dict:
        """Encodes x and draws one reparameterized z: z_mean, z_log_var, z (each [B, d])."""
        z_mean, z_log_var = self.encode(x, training=training)
        if self.stochastic:
            z = losses.reparameterize(z_mean, z_log_var, self.seed_generator)
        else:
            z = z_mean
        return {"z_mean": z_mean, "z_log_var": z_log_var, "z": z}

    def elbo_parts(self, x: tf.Tensor, training: bool) -> dict:
        """The ELBO's pieces for one z ~ q(z|x): the posterior sample, decoder params,
        ``recon`` = -log p(x|z) as trained, and ``kl`` = KL(q(z|x)||p(z)) [B]."""
        parts = self.posterior_sample(x, training)
        parts["params"] = self.decoder_params(parts["z"], x, training=training)
        parts["recon"] = self.likelihood.reconstruction_loss(x, parts["params"])  # [B]
        parts["kl"] = self.prior.kl(parts["z"], parts["z_mean"], parts["z_log_var"])  # [B]
        return parts

    def loss_terms(self, batches: Sequence[tf.Tensor], training: bool) -> dict:
        raise NotImplementedError

    def phases(self) -> list[Phase]:
        return [Phase("main", self.loss_terms, lambda: self.autoencoder_variables)]

    # ------------------------------------------------------------------------------------------
    # Steps
    # ------------------------------------------------------------------------------------------
    def step_phases(self) -> list[Phase]:
        """The phases a training step runs: the objective's ``phases()``, rearranged by a
        training mode when one is set (``training_mode.phases``; He et al.'s aggressive
        training, ``tfvae.aggressive``)."""
        phases = self.phases()
        return phases if self.training_mode is None else self.training_mode.phases(phases)

    def split_batches(self, data) -> list[tf.Tensor]:
        """A step's input as its ``batches_per_step`` minibatches."""
        if isinstance(data, (tuple, list)):
            data = data[0]
        if self.batches_per_step == 1:
            return [data]
        return tf.split(data, self.batches_per_step, axis=0)

    def reduce_terms(self, terms: dict) -> dict:
        """Each loss term's minibatch mean; a term outside ``terms`` is a bug."""
        unknown = set(terms) - set(self.terms)
        if unknown:
            raise KeyError(f"{type(self).__name__} returned untracked terms {sorted(unknown)}.")
        return {key: tf.reduce_mean(value) for key, value in terms.items()}

    def apply_phase(self, phase: Phase, batches: Sequence[tf.Tensor]) -> dict:
        """One gradient update of ``phase.variables()``; returns the reduced terms."""
        groups = phase.groups()
        optimizers = [self.optimizers[name] for name, _ in groups]
        variables = [v for _, group in groups for v in group]
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as tape:
            reduced = self.reduce_terms(phase.loss_fn(batches, True))
            # Replicas' gradients are summed by the optimizer: divide by their number so the
            # update equals the one-device update on the global batch. ``scale_loss`` is the
            # identity except under a LossScaleOptimizer (mixed_float16).
            loss = optimizers[0].scale_loss(reduced[phase.loss_key] / replicas)
        grads = tape.gradient(loss, variables)
        # The first optimizer's loss scale; each optimizer gets the gradient at its own scale.
        unit = optimizers[0].scale_loss(tf.constant(1.0))
        factor = tf.constant(1.0)
        if phase.clipnorm is not None:
            # One clip of the whole gradient, as one optimizer over all variables would do.
            norm = tf.linalg.global_norm([g for g in grads if g is not None]) / unit
            factor = tf.minimum(1.0, phase.clipnorm / norm)
        start = 0
        for (name, group), optimizer in zip(groups, optimizers, strict=True):
            part = grads[start : start + len(group)]
            start += len(group)
            # The norm of this replica's gradient of its mean loss, before clipping (which
            # happens in apply_gradients) and without the loss scale; the tracker averages
            # replicas.
            norm = tf.linalg.global_norm([g for g in part if g is not None])
            self.grad_norms[name].update_state(norm * replicas / unit)
            rescale = factor * optimizer.scale_loss(tf.constant(1.0)) / unit
            optimizer.apply_gradients(
                [(g * rescale, v) for g, v in zip(part, group, strict=True) if g is not None]
            )
        return reduced

    def _run_phases(self, phases: Sequence[Phase], data, finish: bool) -> dict:
        """Fixed-repeat ``phases`` on ``data``; with ``finish``, the step's end: the step counter
        advances and the trackers' results are returned."""
        batches = self.split_batches(data)
        for phase in phases:
            for _ in range(phase.repeats):
                reduced = self.apply_phase(phase, batches)
            if phase.tracked:
                for key, value in reduced.items():
                    self.trackers[key].update_state(value)
        if not finish:
            return {}
        self.step.assign_add(1)
        return {key: tracker.result() for key, tracker in self.trackers.items()}

    def train_step(self, data):
        """One training step in one graph (every phase with a fixed number of repeats)."""
        phases = self.step_phases()
        if any(phase.until is not None for phase in phases):
            raise ValueError(
                f"{type(self).__name__}'s step has data-dependent repeats (Phase.until): run it "
                "through make_step, which decides them between updates."
            )
        return self._run_phases(phases, data, finish=True)

    def make_step(self, compile_fn: Callable, stream: Callable) -> Callable:
        """The training step as a caller runs it: ``step(data) -> logs``.

        Consecutive fixed-repeat phases run as one compiled function (the whole step, for every
        objective without ``Phase.until``); a phase with ``until`` runs update by update and
        its update count joins the logs. Compiled functions are cached by the phases' shape,
        so a step whose phases change (a training mode that ends) traces once per variant.

        Args:
          compile_fn: ``fn -> compiled fn`` that runs ``fn`` on every replica and returns its
            outputs as replica means (``tf.function`` on one device).
          stream: ``(seed_offset, start) -> iterator`` of training batches as the step takes
            them, from the training pipeline with ``seed + seed_offset``, from batch ``start``.
        """
        compiled: dict = {}
        streams: dict = {}

        def fresh(until: Until):
            if until.seed_offset not in streams:  # created on first use: after a restore
                streams[until.seed_offset] = stream(until.seed_offset, int(until.drawn.numpy()))
            until.drawn.assign_add(1)
            return next(streams[until.seed_offset])

        def segment(phases: list[Phase], finish: bool) -> Callable:
            key = (
                tuple((p.optimizer, p.loss_key, p.repeats, p.tracked, p.clipnorm) for p in phases),
                finish,
            )
            if key not in compiled:
                compiled[key] = compile_fn(lambda data: self._run_phases(phases, data, finish))
            return compiled[key]

        def update(phase: Phase) -> Callable:
            key = ("until", phase.optimizer, phase.loss_key)
            if key not in compiled:
                compiled[key] = compile_fn(
                    lambda data: self.apply_phase(phase, self.split_batches(data))[phase.loss_key]
                )
            return compiled[key]

        def step(data) -> dict:
            logs, pending = {}, []
            for phase in self.step_phases():
                if phase.until is None:
                    pending.append(phase)
                    continue
                if pending:
                    segment(pending, finish=False)(data)
                    pending = []
                until, batch, losses = phase.until, data, []
                while len(losses) < until.max_repeats:
                    losses.append(float(update(phase)(batch)))
                    if until.stop(losses):
                        break
                    if len(losses) < until.max_repeats:
                        batch = fresh(until)
                logs[until.log_key] = len(losses)
            return {**segment(pending, finish=True)(data), **logs}

        return step

    def test_step(self, data):
        # Evaluation must not advance the training random state: a run that validates more
        # often (or a resumed one) would otherwise train on different noise.
        state = tf.identity(self.seed_generator.state)
        batches = self.split_batches(data)
        for phase in self.phases():
            for key, value in self.reduce_terms(phase.loss_fn(batches, False)).items():
                self.trackers[key].update_state(value)
        self.seed_generator.state.assign(state)
        return {key: tracker.result() for key, tracker in self.trackers.items()}


class AdversarialAutoencoder(Autoencoder):
    """Second base, for objectives with an adversary network trained by its own optimizer.

    Adds ``adversary`` (a keras.Model from ``tfvae.networks.build_adversary``) and the optimizer
    name ``"adversary"``. Subclasses list their phases; each phase moves only its variables, so
    the adversary's update never moves the autoencoder and vice versa.
    """

    optimizer_names = ("main", "adversary")

    def __init__(self, *, adversary: keras.Model, **kwargs):
        super().__init__(**kwargs)
        self.adversary = adversary

    def build_all(self, example_batch):
        self.adversary(tf.zeros([1, self.latent_dim]))
        super().build_all(example_batch)
