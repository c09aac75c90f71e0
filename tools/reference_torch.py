"""PyTorch reference for ``tools.benchmark --reference``: the dpVAE MNIST model, timed the same way.

    python -m tools.reference_torch --batch_size=100 --steps=100
    python -m tools.reference_torch --prior=standard_normal --json

An independent PyTorch implementation of the model the dpVAE authors trained on MNIST
(Bhalodia et al., ACCV 2020, App. C; the layers of ``tfvae.networks.mnist_conv_*`` with the
authors' unpadded k3 convolutions), so that tfvae's speed is compared with eager PyTorch on the
same machine in the same run:

  encoder  Conv 32 k4 s2 p1 -> Conv 32 k3 -> Conv 32 k4 s2 p1 -> Conv 32 k3 -> FC 256 -> FC 256
           -> FC 2d (ReLU between), 28 -> 14 -> 12 -> 6 -> 4;
  decoder  FC 256 -> FC 256 -> FC 512 -> ConvT 32 k3 -> ConvT 32 k4 s2 p1 -> ConvT 32 k3
           -> ConvT 1 k4 s2 p1 (ReLU between, linear output), 4 -> 6 -> 12 -> 14 -> 28;
  prior    6 affine coupling blocks (s and t nets 64-64 LeakyReLU, tanh on s) with a reversal
           between blocks, as ``tfvae.priors.DecoupledPrior``; or the standard normal;
  loss     w * sum (x - x_hat)^2 + KL(q(z|x) || p(z)), KL = -H[q] - log p(z) with the flow
           density (single sample), or the closed form; mean over the batch; Adam, lr 1e-4.

PyTorch is not a dependency of tfvae: ``pip install torch`` to use this tool. It prints the
same timing numbers as ``tools.benchmark`` (best and median of ``--repeats`` rounds of
``--steps`` steps after ``--warmup``) and, with ``--json``, one JSON line.
"""

import json
import math
import resource
import statistics
import time

from absl import app, flags

LOG_2PI = math.log(2.0 * math.pi)


def build(latent_dim: int = 2, prior: str = "decoupled", num_blocks: int = 6, weight: float = 1.0):
    """The model and its loss: returns ``(module, loss_fn)`` with ``loss_fn(x) -> scalar``."""
    import torch
    from torch import nn

    def mlp(n_in, n_out, final):
        layers = [nn.Linear(n_in, 64), nn.LeakyReLU(0.01), nn.Linear(64, 64), nn.LeakyReLU(0.01)]
        layers.append(nn.Linear(64, n_out))
        if final is not None:
            layers.append(final)
        return nn.Sequential(*layers)

    class Coupling(nn.Module):
        def __init__(self, d):
            super().__init__()
            self.m = d // 2
            self.s = mlp(self.m, d - self.m, nn.Tanh())
            self.t = mlp(self.m, d - self.m, None)

        def inverse(self, y):
            """y -> x and log|det dx/dy| [B]."""
            y0, y1 = y[:, : self.m], y[:, self.m :]
            s, t = self.s(y0), self.t(y0)
            return torch.cat([y0, (y1 - t) * torch.exp(-s)], dim=1), -s.sum(dim=1)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            d = latent_dim
            self.encoder = nn.Sequential(
                nn.Conv2d(1, 32, 4, 2, 1),
                nn.ReLU(),
                nn.Conv2d(32, 32, 3, 1, 0),
                nn.ReLU(),
                nn.Conv2d(32, 32, 4, 2, 1),
                nn.ReLU(),
                nn.Conv2d(32, 32, 3, 1, 0),
                nn.ReLU(),
                nn.Flatten(),
                nn.Linear(512, 256),
                nn.ReLU(),
                nn.Linear(256, 256),
                nn.ReLU(),
                nn.Linear(256, 2 * d),
            )
            self.decoder = nn.Sequential(
                nn.Linear(d, 256),
                nn.ReLU(),
                nn.Linear(256, 256),
                nn.ReLU(),
                nn.Linear(256, 512),
                nn.ReLU(),
                nn.Unflatten(1, (32, 4, 4)),
                nn.ConvTranspose2d(32, 32, 3, 1, 0),
                nn.ReLU(),
                nn.ConvTranspose2d(32, 32, 4, 2, 1),
                nn.ReLU(),
                nn.ConvTranspose2d(32, 32, 3, 1, 0),
                nn.ReLU(),
                nn.ConvTranspose2d(32, 1, 4, 2, 1),
            )
            blocks = num_blocks if prior == "decoupled" else 0
            self.flow = nn.ModuleList([Coupling(d) for _ in range(blocks)])

        def log_prior(self, z):
            """log N(g(z); 0, I) + log|det dg/dz|: blocks inverted last to first, with the
            reversal that sits between two blocks in the generation direction."""
            log_det = torch.zeros(z.shape[0])
            for k in reversed(range(len(self.flow))):
                z, ld = self.flow[k].inverse(z)
                log_det = log_det + ld
                if k > 0:
                    z = torch.flip(z, dims=[1])
            return -0.5 * (LOG_2PI + z.square()).sum(dim=1) + log_det

        def loss(self, x):
            z_mean, z_log_var = self.encoder(x).chunk(2, dim=1)
            z = z_mean + torch.exp(0.5 * z_log_var) * torch.randn_like(z_mean)
            recon = weight * (x - self.decoder(z)).square().sum(dim=(1, 2, 3))
            if len(self.flow):
                entropy = 0.5 * (LOG_2PI + 1.0 + z_log_var).sum(dim=1)
                kl = -entropy - self.log_prior(z)
            else:
                kl = 0.5 * (z_mean.square() + z_log_var.exp() - 1.0 - z_log_var).sum(dim=1)
            return (recon + kl).mean()

    model = Model()
    return model, model.loss


def benchmark(*, batch_size: int, steps: int, repeats: int, warmup: int, prior: str) -> dict:
    import torch

    torch.manual_seed(0)
    model, loss_fn = build(prior=prior)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.rand(batch_size, 1, 28, 28)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(x)
        loss.backward()
        optimizer.step()
        return loss

    start = time.perf_counter()
    step()
    first = time.perf_counter() - start
    for _ in range(max(warmup - 1, 0)):
        step()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            loss = step()
        float(loss)
        rates.append(steps / (time.perf_counter() - start))
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "prior": prior,
        "batch": batch_size,
        "steps_per_s": max(rates),
        "steps_per_s_median": statistics.median(rates),
        "examples_per_s": max(rates) * batch_size,
        "first_step_s": first,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


_BATCH = flags.DEFINE_integer("batch_size", 100, "Examples per step.")
_STEPS = flags.DEFINE_integer("steps", 100, "Timed steps per round.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed rounds; the best one is reported.")
_WARMUP = flags.DEFINE_integer("warmup", 20, "Untimed steps first.")
_PRIOR = flags.DEFINE_enum("prior", "decoupled", ["decoupled", "standard_normal"], "The prior.")
_JSON = flags.DEFINE_boolean("json", False, "Print one JSON line.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    try:
        import torch  # noqa: F401
    except ImportError:
        raise SystemExit("tools.reference_torch needs PyTorch: pip install torch") from None
    r = benchmark(
        batch_size=_BATCH.value,
        steps=_STEPS.value,
        repeats=_REPEATS.value,
        warmup=_WARMUP.value,
        prior=_PRIOR.value,
    )
    if _JSON.value:
        print(json.dumps(r))
        return
    print(
        f"PyTorch {r['torch']} ({r['threads']} threads), dpVAE MNIST model, prior {r['prior']}, "
        f"batch {r['batch']}: {r['steps_per_s']:.1f} steps/s (median "
        f"{r['steps_per_s_median']:.1f}), {r['examples_per_s']:.0f} examples/s, peak RSS "
        f"{r['peak_rss_mb']:.0f} MB"
    )


if __name__ == "__main__":
    app.run(main)
