"""Aggressive inference-network training (He et al. 2019) as a training mode for any objective.

Reference: He, Spokoyny, Neubig, Berg-Kirkpatrick. Lagging Inference Networks and Posterior
Collapse in Variational Autoencoders. ICLR 2019, Algorithm 1; settings from their code
(jxhe/vae-lagging-encoder). METHODS.md section 5.

The mode rearranges the objective's first (autoencoder) phase, and the base model's one step
(``tfvae.models.Autoencoder.make_step``) runs the result like any objective's phases.
While the mode is active, one training step is

1. an encoder-only phase with data-dependent repeats (``models.Until``) of the objective's
   loss: the first update on the step's batch (as in their code), the following ones on fresh
   training batches, at most ``max_encoder_steps``. After every ``window`` updates the mean
   loss of those updates is compared with the previous window's; the inner loop stops as soon
   as it did not decrease (``stopped_improving``);
2. one decoder-only phase (decoder and prior) on the step's batch. The step counter, the
   trackers and so KL annealing advance once per step, as in the normal path; the encoder
   phase's terms are not tracked, and its update count is logged as ``encoder_steps``.

After each validation the hook ``end_of_validation(val)`` compares the validation mutual
information with the best seen so far; once it has failed to improve ``patience`` times in all
(not necessarily in a row) the mode switches off for good. He et al.'s code stops at the first
epoch whose MI is below the previous one; the project's rule (METHODS.md) is more patient. The
MI is the one the collapse metrics add to the validation results, so the mode needs
``train.collapse_metrics``.

Optimizers: as in He et al., the encoder and the decoder side each have their own optimizer
(``model.optimizers["encoder"]``, ``["decoder"]``), copies of ``config.optimizers.main`` (so
Adam's moments and step counts belong to the updates they scale), loss-scaled under
``mixed_float16`` like every optimizer (``tfvae.build.build_optimizer``). After the mode ends a
step is one phase: one gradient of the full loss, clipped jointly as the main optimizer would
(``Phase.clipnorm`` = its ``global_clipnorm``) and split between the two optimizers, so their
state carries on. The model's own "main" optimizer is unused in this mode. Further phases of
adversarial objectives run unchanged after the main update. Under a distribution strategy the
encoder updates' losses are replica means, so every replica runs the same number of updates.

State that must survive a restart (active flag, best MI, failure count, fresh batches drawn, the
two optimizers) lives in an ``AggressiveState`` attached to the model as
``model.aggressive_state``, so the model's checkpoint carries it. The fresh batches come from
their own step-deterministic stream (the training pipeline with ``seed + FRESH_SEED_OFFSET``),
started at the number already drawn.
"""

import math

import keras
import tensorflow as tf

from tfvae.build import build_optimizer
from tfvae.errors import InvalidValue
from tfvae.models import Autoencoder, Phase, Until

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


def stopped_improving(losses: list[float], window: int) -> bool:
    """He et al.'s inner-loop rule: after every ``window`` updates, True when the mean loss of
    the last window is not below the previous window's (equal is no improvement; a NaN mean
    compares False, so it never stops the loop by itself)."""
    k = len(losses)
    if k % window or k < 2 * window:
        return False
    current = sum(losses[-window:]) / window
    previous = sum(losses[-2 * window : -window]) / window
    return current >= previous


class AggressiveTraining:
    """He et al.'s aggressive mode, attached to a compiled model before its ``build_all``.

    Args:
      model: the model (compiled; ``build_all`` not yet run: it builds the mode's optimizers).
      optimizer: the optimizer spec both copies are built from (``config.optimizers.main``).
      mixed_precision: ``config.train.mixed_precision`` (loss scaling under mixed_float16).
      max_encoder_steps: at most this many encoder-only updates per step (He et al.: 100).
      window: the running loss is compared every ``window`` updates (He et al.: 10).
      patience: validations without a new best MI before the mode ends (METHODS.md: 5).
    """

    def __init__(
        self,
        model: Autoencoder,
        *,
        optimizer: dict,
        mixed_precision: str = "float32",
        max_encoder_steps: int = 100,
        window: int = 10,
        patience: int = 5,
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
        self.clipnorm = optimizer.get("global_clipnorm")
        self.state = AggressiveState(
            build_optimizer(optimizer, mixed_precision), build_optimizer(optimizer, mixed_precision)
        )
        # Attached to the model: the model's checkpoint holds the mode's state.
        model.aggressive_state = self.state
        for name, opt in (
            ("encoder", self.state.encoder_optimizer),
            ("decoder", self.state.decoder_optimizer),
        ):
            model.optimizers[name] = opt
            model.grad_norms[name] = keras.metrics.Mean(name=f"grad_norm_{name}")
        model.training_mode = self

    @classmethod
    def attach(cls, model: Autoencoder, config) -> "AggressiveTraining":
        """The mode for ``config`` (``config.train.aggressive``) with He et al.'s settings."""
        if not config.train.collapse_metrics:
            raise InvalidValue(
                "train.aggressive ends by the validation mutual information, which "
                "train.collapse_metrics computes: set --config.train.collapse_metrics=True."
            )
        return cls(
            model,
            optimizer=config.optimizers.main.to_dict(),
            mixed_precision=config.train.mixed_precision,
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
    # The step's phases and the switch
    # ------------------------------------------------------------------------------------------
    def phases(self, phases: list[Phase]) -> list[Phase]:
        """The objective's ``phases`` with the first (autoencoder) phase replaced: while the mode
        is active by an encoder phase (data-dependent repeats) and a decoder phase, after it by
        one joint update split between the two optimizers."""
        main, *rest = phases
        if not self.active:
            joint = Phase(
                ("encoder", "decoder"),
                main.loss_fn,
                lambda: (self.encoder_variables(), self.decoder_variables()),
                main.loss_key,
                clipnorm=self.clipnorm,
            )
            return [joint, *rest]
        until = Until(
            max_repeats=self.max_encoder_steps,
            stop=lambda losses: stopped_improving(losses, self.window),
            seed_offset=FRESH_SEED_OFFSET,
            drawn=self.state.fresh_batches,
            log_key="encoder_steps",
        )
        encoder = Phase(
            "encoder",
            main.loss_fn,
            self.encoder_variables,
            main.loss_key,
            until=until,
            tracked=False,
        )
        decoder = Phase("decoder", main.loss_fn, self.decoder_variables, main.loss_key)
        return [encoder, decoder, *rest]

    def end_of_validation(self, val: dict) -> dict:
        """The validation hook: applies the stopping rule to ``val["mutual_information"]``;
        returns values to log. A NaN MI counts as a failure to improve."""
        mutual_information = val["mutual_information"]
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
