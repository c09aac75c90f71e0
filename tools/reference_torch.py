"""PyTorch reference for ``tools.benchmark --reference``: the dpVAE MNIST model, timed the same way.

    python -m tools.reference_torch --batch_size=100 --steps=100
    python -m tools.reference_torch --prior=standard_normal --json
    python -m tools.reference_torch --official=/work/authors --json   # + the authors' own step

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

``--official=CHECKOUT`` also times the authors' own step from a checkout of
iyerkrithika21/dpVAE (``tools/authors_torch.py``: their ``BetaVAE_MNIST``, wrapped in their
``Implicit`` for the decoupled prior, their loss summed over the batch, Adam, and the three
``.item()`` reads per step their training loop does for its log), taking turns with the
reference round by round, in the same process. Needs only torch and numpy (argparse, no absl),
so it runs in any Python that has torch (``tools.benchmark --torch_python``).
"""

import argparse
import json
import math
import resource
import statistics
import time

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


def _timed_rounds(steps_fns: dict, *, steps: int, repeats: int, warmup: int) -> dict:
    """Steps per second of each ``fn()`` in turns, round by round (as ``tools.benchmark``)."""
    first, rates = {}, {name: [] for name in steps_fns}
    for name, fn in steps_fns.items():
        start = time.perf_counter()
        float(fn().detach())
        first[name] = time.perf_counter() - start
        for _ in range(max(warmup - 1, 0)):
            fn()
    for _ in range(repeats):
        for name, fn in steps_fns.items():
            start = time.perf_counter()
            for _ in range(steps):
                loss = fn()
            float(loss.detach())
            rates[name].append(steps / (time.perf_counter() - start))
    return {name: (first[name], rates[name]) for name in steps_fns}


def official_step(checkout: str, prior: str, batch_size: int):
    """One training step of the authors' own code (``tools.authors_torch``) on a synthetic
    batch: their model, their summed loss, Adam(1e-4), and the ``.item()`` reads of their log."""
    import torch

    from tools import authors_torch

    model = authors_torch.build(checkout, prior, latent_dim=2)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.999))
    x = torch.rand(batch_size, 1, 28, 28)

    def step():
        loss, recon, kl = authors_torch.loss_terms(model, x, prior, 1.0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        loss.item(), recon.item(), kl.item()  # their loop logs the three terms every step
        return loss

    return step


def benchmark(
    *,
    batch_size: int,
    steps: int,
    repeats: int,
    warmup: int,
    prior: str,
    official: str | None = None,
) -> dict:
    """The reference's rates (and with ``official``, the authors' step's, under
    ``official_*`` keys), timed in turns in this process."""
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

    fns = {"reference": step}
    if official:
        fns["official"] = official_step(official, prior, batch_size)
    timed = _timed_rounds(fns, steps=steps, repeats=repeats, warmup=warmup)
    out = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "prior": prior,
        "batch": batch_size,
    }
    for name, (first, rates) in timed.items():
        prefix = "" if name == "reference" else "official_"
        out.update(
            {
                f"{prefix}steps_per_s": max(rates),
                f"{prefix}steps_per_s_median": statistics.median(rates),
                f"{prefix}examples_per_s": max(rates) * batch_size,
                f"{prefix}first_step_s": first,
            }
        )
    if official:
        out["official_checkout"] = official
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--batch_size", type=int, default=100, help="Examples per step.")
    p.add_argument("--steps", type=int, default=100, help="Timed steps per round.")
    p.add_argument("--repeats", type=int, default=5, help="Timed rounds; the best is reported.")
    p.add_argument("--warmup", type=int, default=20, help="Untimed steps first.")
    p.add_argument("--prior", choices=("decoupled", "standard_normal"), default="decoupled")
    p.add_argument("--official", default=None, help="a checkout of iyerkrithika21/dpVAE")
    p.add_argument("--json", action="store_true", help="Print one JSON line.")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        import torch  # noqa: F401
    except ImportError:
        raise SystemExit("tools.reference_torch needs PyTorch: pip install torch") from None
    r = benchmark(
        batch_size=args.batch_size,
        steps=args.steps,
        repeats=args.repeats,
        warmup=args.warmup,
        prior=args.prior,
        official=args.official,
    )
    if args.json:
        print(json.dumps(r))
        return
    print(
        f"PyTorch {r['torch']} ({r['threads']} threads), dpVAE MNIST model, prior {r['prior']}, "
        f"batch {r['batch']}: {r['steps_per_s']:.1f} steps/s (median "
        f"{r['steps_per_s_median']:.1f}), {r['examples_per_s']:.0f} examples/s, peak RSS "
        f"{r['peak_rss_mb']:.0f} MB"
    )
    if args.official:
        print(
            f"the authors' step ({args.official}): {r['official_steps_per_s']:.1f} steps/s "
            f"(median {r['official_steps_per_s_median']:.1f}), same process, in turns"
        )


if __name__ == "__main__":
    main()
