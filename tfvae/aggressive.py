"""Aggressive inference-network training (He et al. 2019) as a training mode for any objective.

Reference: He, Spokoyny, Neubig, Berg-Kirkpatrick. Lagging Inference Networks and Posterior
Collapse in Variational Autoencoders. ICLR 2019, Algorithm 1; settings from their code
(jxhe/vae-lagging-encoder). METHODS.md section 5.

While the mode is active, one training step is

1. encoder-only updates of the objective's loss: the first on the step's batch (as in their
   code), the following ones on fresh training batches, at most ``max_encoder_steps``. After every
   ``window`` updates the mean loss of those updates is compared with the previous window's;
   the inner loop stops as soon as it did not decrease;
2. one decoder-only update (decoder and prior) on the step's batch. The step counter, the
   trackers and so KL annealing advance once per step, as in the normal path.

After each validation, ``end_of_validation(mi)`` compares the validation mutual information with
the best seen so far; once it has failed to improve ``patience`` times in all (not necessarily in
a row) the mode switches off for good. He et al.'s code stops at the first epoch whose MI is below
the previous one; the project's rule (METHODS.md) is more patient.

Optimizers: as in He et al., the encoder and the decoder side each have their own optimizer,
copies of ``config.optimizers.main`` (so Adam's moments and step counts belong to the updates
they scale). After the mode ends a step is one gradient of the full loss, clipped jointly as the
main optimizer would (``global_clipnorm``), and applied by both optimizers, so their state carries
on. The model's own "main" optimizer is unused in this mode. Further phases of adversarial
objectives run unchanged after the main update.

State that must survive a restart (active flag, best MI, failure count, fresh batches drawn, the
two optimizers) lives in an ``AggressiveState`` attached to the model as ``model.aggressive_state``,
so the model's checkpoint carries it. The fresh batches come from their own step-deterministic
stream (``tfvae.data.train_dataset`` with another seed), started at the number already drawn.
"""

import math

import tensorflow as tf

from tfvae import data as data_lib
from tfvae.build import resolve_jit_compile
from tfvae.errors import InvalidValue
from tfvae.models import Autoencoder
from tfvae.optimizers import OPTIMIZERS
from tfvae.registry import lookup

# Seed offset of the fresh-batch stream, so that it never repeats the main stream's batches.
FRESH_SEED_OFFSET = 1_000_003


class AggressiveState(tf.Module):
    """The checkpointed state of aggressive training.

    Attributes:
      active: bool, whether the mode is still on.
      best_mi: float32, the best validation MI so far (-inf before the first validation).
      failures: int32, validations whose MI did not beat ``best_mi``.
      fresh_batches: int64, fresh batches drawn so far (the resume point of their stream).
      encoder_optimizer, decoder_optimizer: the two optimizers.
    """

    def __init__(self, encoder_optimizer, decoder_optimizer):
        super().__init__(name="aggressive_state")
        self.active = tf.Variable(True, trainable=False, name="active")
        self.best_mi = tf.Variable(-math.inf, trainable=False, name="best_mi")
        self.failures = tf.Variable(0, trainable=False, name="failures")
        self.fresh_batches = tf.Variable(0, dtype=tf.int64, trainable=False, name="fresh_batches")
        self.encoder_optimizer = encoder_optimizer
        self.decoder_optimizer = decoder_optimizer


def _optimizer(spec: dict):
    spec = dict(spec)
    cls = lookup(OPTIMIZERS, spec.pop("name"), "optimizer")
    return cls(**{k: v for k, v in spec.items() if v is not None})


class AggressiveTraining:
    """Drives a built, compiled model in aggressive mode.

    Args:
      model: the model (its variables and optimizers already built, ``build_all``).
      optimizer: the optimizer spec both copies are built from (``config.optimizers.main``).
      train_images: the training split, source of the fresh batches.
      batch_size: examples per minibatch (times ``model.batches_per_step`` per step).
      seed: the run's seed; the fresh stream uses ``seed + FRESH_SEED_OFFSET``.
      binarize, dequantize, augment: the training pipeline's transforms (``config.data``).
      max_encoder_steps: at most this many encoder-only updates per step (He et al.: 100).
      window: the running loss is compared every ``window`` updates (He et al.: 10).
      patience: validations without a new best MI before the mode ends (METHODS.md: 5).
      jit_compile: passed to ``tf.function``.
    """

    def __init__(
        self,
        model: Autoencoder,
        *,
        optimizer: dict,
        train_images,
        batch_size: int,
        seed: int,
        binarize: str = "none",
        dequantize: bool = False,
        augment: str = "none",
        max_encoder_steps: int = 100,
        window: int = 10,
        patience: int = 5,
        jit_compile: bool = False,
    ):
        if not model.stochastic:
            raise InvalidValue("Aggressive training is defined for VAEs (a stochastic encoder).")
        if max_encoder_steps < 1 or window < 1 or patience < 1:
            raise InvalidValue(
                f"max_encoder_steps ({max_encoder_steps}), window ({window}) and patience "
                f"({patience}) must be >= 1."
            )
        main, *_ = model.phases()
        if main.optimizer != "main":
            raise InvalidValue(
                f"{type(model).__name__}'s first phase uses optimizer {main.optimizer!r}; "
                "aggressive training splits the 'main' (autoencoder) phase."
            )
        self.model = model
        self.max_encoder_steps, self.window, self.patience = max_encoder_steps, window, patience
        self._fresh = dict(
            x=train_images,
            batch_size=batch_size * model.batches_per_step,
            seed=seed + FRESH_SEED_OFFSET,
            binarize=binarize,
            dequantize=dequantize,
            augment=augment,
        )
        self._fresh_iterator = None
        self._clipnorm = optimizer.get("global_clipnorm")
        self.state = AggressiveState(_optimizer(optimizer), _optimizer(optimizer))
        self.state.encoder_optimizer.build(self.encoder_variables())
        self.state.decoder_optimizer.build(self.decoder_variables())
        # Attached to the model: the model's checkpoint holds the mode's state.
        model.aggressive_state = self.state
        self._encoder_fn = tf.function(self._encoder_update, jit_compile=jit_compile)
        self._decoder_fn = tf.function(self._decoder_update, jit_compile=jit_compile)
        self._joint_fn = tf.function(self._joint_update, jit_compile=jit_compile)

    @classmethod
    def from_config(cls, model: Autoencoder, config, train_images) -> "AggressiveTraining":
        """The mode for ``config`` (``config.train.aggressive``) with He et al.'s settings."""
        if config.train.mixed_precision == "mixed_float16":
            # Its own encoder and decoder optimizers step on gradients of one (jointly clipped)
            # loss that is never loss-scaled, so float16 gradients could underflow.
            raise InvalidValue(
                "train.aggressive does not support train.mixed_precision='mixed_float16' (no "
                "loss scaling in its encoder/decoder updates); use 'mixed_bfloat16' or "
                "'float32'."
            )
        return cls(
            model,
            optimizer=config.optimizers.main.to_dict(),
            train_images=train_images,
            batch_size=config.train.batch_size,
            seed=config.seed,
            **data_lib.train_transforms(config.data),
            jit_compile=resolve_jit_compile(config.train.jit_compile),
        )

    # ------------------------------------------------------------------------------------------
    # Variables
    # ------------------------------------------------------------------------------------------
    def encoder_variables(self) -> list:
        return list(self.model.encoder.trainable_variables)

    def decoder_variables(self) -> list:
        """Everything else the main phase trains: decoder and prior."""
        encoder = {id(v) for v in self.encoder_variables()}
        return [v for v in self.model.phases()[0].variables() if id(v) not in encoder]

    @property
    def active(self) -> bool:
        return bool(self.state.active.numpy())

    # ------------------------------------------------------------------------------------------
    # Updates (each traced once by tf.function)
    # ------------------------------------------------------------------------------------------
    def _main_terms(self, batches) -> tuple[dict, tf.Tensor]:
        main = self.model.phases()[0]
        terms = {k: tf.reduce_mean(v) for k, v in main.loss_fn(batches, True).items()}
        return terms, terms[main.loss_key]

    def _apply(self, optimizer, grads, variables):
        optimizer.apply_gradients(
            [(g, v) for g, v in zip(grads, variables, strict=True) if g is not None]
        )

    def _finish_step(self, terms: dict, batches) -> dict:
        for key, value in terms.items():
            self.model.trackers[key].update_state(value)
        for phase in self.model.phases()[1:]:  # e.g. an adversary: unchanged
            for _ in range(phase.repeats):
                reduced = self.model.apply_phase(phase, batches)
            for key, value in reduced.items():
                self.model.trackers[key].update_state(value)
        self.model.step.assign_add(1)
        return {key: tracker.result() for key, tracker in self.model.trackers.items()}

    def _encoder_update(self, data) -> tf.Tensor:
        variables = self.encoder_variables()
        with tf.GradientTape() as tape:
            _, loss = self._main_terms(self.model._split(data))
        self._apply(self.state.encoder_optimizer, tape.gradient(loss, variables), variables)
        return loss

    def _decoder_update(self, data) -> dict:
        batches = self.model._split(data)
        variables = self.decoder_variables()
        with tf.GradientTape() as tape:
            terms, loss = self._main_terms(batches)
        self._apply(self.state.decoder_optimizer, tape.gradient(loss, variables), variables)
        return self._finish_step(terms, batches)

    def _joint_update(self, data) -> dict:
        batches = self.model._split(data)
        enc, dec = self.encoder_variables(), self.decoder_variables()
        with tf.GradientTape() as tape:
            terms, loss = self._main_terms(batches)
        grads = tape.gradient(loss, enc + dec)
        if self._clipnorm is not None:
            # One joint clip, as one optimizer over all variables would do (He et al. too).
            kept = [g for g in grads if g is not None]
            clipped, _ = tf.clip_by_global_norm(kept, self._clipnorm)
            it = iter(clipped)
            grads = [None if g is None else next(it) for g in grads]
        self._apply(self.state.encoder_optimizer, grads[: len(enc)], enc)
        self._apply(self.state.decoder_optimizer, grads[len(enc) :], dec)
        return self._finish_step(terms, batches)

    # ------------------------------------------------------------------------------------------
    # The step and the switch
    # ------------------------------------------------------------------------------------------
    def _next_fresh(self) -> tf.Tensor:
        if self._fresh_iterator is None:  # created lazily: after a checkpoint restore
            start = int(self.state.fresh_batches.numpy())
            self._fresh_iterator = iter(data_lib.train_dataset(start_step=start, **self._fresh))
        self.state.fresh_batches.assign_add(1)
        return next(self._fresh_iterator)

    def train_step(self, data) -> dict:
        """One training step; returns the trackers' results and ``encoder_steps``."""
        if not self.active:
            logs = dict(self._joint_fn(data))
            logs["encoder_steps"] = 0
            return logs
        batch, previous, window_sum = data, math.inf, 0.0
        for k in range(1, self.max_encoder_steps + 1):
            window_sum += float(self._encoder_fn(batch))
            if k % self.window == 0:
                current = window_sum / self.window
                if current >= previous:
                    break
                previous, window_sum = current, 0.0
            if k < self.max_encoder_steps:
                batch = self._next_fresh()
        logs = dict(self._decoder_fn(data))
        logs["encoder_steps"] = k
        return logs

    def end_of_validation(self, mutual_information: float) -> dict:
        """Applies the stopping rule to a validation MI; returns values to log.

        A NaN MI counts as a failure to improve.
        """
        if self.active:
            if mutual_information > float(self.state.best_mi.numpy()):
                self.state.best_mi.assign(mutual_information)
            else:
                self.state.failures.assign_add(1)
                if int(self.state.failures.numpy()) >= self.patience:
                    self.state.active.assign(False)
        return {
            "aggressive_active": float(self.active),
            "aggressive_failures": float(self.state.failures.numpy()),
        }
