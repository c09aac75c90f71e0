"""Trains the dpVAE authors' own model classes with their per-iteration computation (PyTorch).

Run by ``tools.authors_code`` in a Python that has torch (not a tfvae dependency) and a checkout
of https://github.com/iyerkrithika21/dpVAE; it imports nothing from tfvae, only torch, numpy
and the checkout's ``models`` package:

    python tools/authors_torch.py --checkout=DIR --data=data.npz --prior=decoupled \
        --seed=0 --steps=5000 --out=run.npz

What it reproduces of the authors' code, line for line in effect (their ``trainers/trainer.py``
``train_inst`` and ``implicit_inst``, which need torchvision and plotting to import):

- model: ``models.beta_model.BetaVAE_MNIST(z_dims, 1)``, wrapped in
  ``models.implicit_model.Implicit`` (masks "half", 50 %, ``sampling_freq`` 1) for the
  decoupled prior; PyTorch's default initialization;
- loss, summed over the batch: ``w * sum (x_recon - x)^2`` plus the closed-form KL (standard
  prior) or ``-sum(log_det) - 0.5 * sum(sum(logvar) - |g(z)|^2)`` (decoupled prior);
- ``torch.optim.Adam(lr, betas=(0.9, 0.999))``, epsilon 1e-8; shuffled epochs, drop_last;
- no augmentation (the ``augment`` of their MNIST configs is a data option, not the model).

Writes ``--out`` (npz): every parameter as ``param/<state_dict name>``, the loss curve
(``curve_step``, ``curve_loss``, ``curve_recon``, ``curve_kl``: per-example means over each
``--log_every`` steps, their loss as they compute it) and ``val_loss``/``val_recon``/``val_kl``
per example on the data's validation images, the KL with its constant (their flow KL omits
-d/2, which moves no gradient). ``--init`` starts from the parameters of such a file instead
of a new initialization (for same-start comparisons).
"""

import argparse
import os
import sys
import time

import numpy as np


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--checkout", required=True, help="work tree of iyerkrithika21/dpVAE")
    p.add_argument("--data", required=True, help="npz with uint8 x_train, x_val [N, 28, 28, 1]")
    p.add_argument("--prior", choices=("standard_normal", "decoupled"), required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--batch_size", type=int, default=100)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--weight", type=float, default=1.0, help="the authors' mse_weight")
    p.add_argument("--latent_dim", type=int, default=2)
    p.add_argument("--log_every", type=int, default=100)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--init", default=None, help="npz of parameters to start from")
    p.add_argument(
        "--reduction",
        choices=("sum", "mean"),
        default="sum",
        help="the loss over the batch: sum (the authors') or mean (tfvae's); with Adam this "
        "changes only how large epsilon is next to the gradients",
    )
    p.add_argument("--eps", type=float, default=1e-8, help="Adam's epsilon (torch's default)")
    p.add_argument("--out", required=True)
    return p.parse_args(argv)


def build(checkout: str, prior: str, latent_dim: int):
    """The authors' model: BetaVAE_MNIST, wrapped in Implicit for the decoupled prior."""
    sys.path.insert(0, os.path.abspath(checkout))
    from models.beta_model import BetaVAE_MNIST  # the authors' module

    model = BetaVAE_MNIST(z_dims=latent_dim, input_dims=1)
    if prior == "decoupled":
        from models.implicit_model import Implicit  # the authors' module

        config = {"z_dims": latent_dim, "masks": "half", "mask_percent": 50, "sampling_freq": 1}
        model = Implicit(model, config)
    return model


def loss_terms(model, x, prior: str, weight: float):
    """The authors' loss, summed over the batch: (loss, recon, kl) as scalars."""
    import torch
    import torch.nn.functional as F

    if prior == "decoupled":
        x_recon, mu, logvar, z, z0, log_det = model(x)  # implicit_inst
        recon = weight * F.mse_loss(x_recon, x, reduction="sum")
        els = -torch.sum(log_det)
        dkl = -0.5 * torch.sum(logvar.sum(dim=1) - (z0 * z0).sum(dim=1))
        kl = els + dkl
    else:
        x_recon, mu, logvar, z = model(x)  # train_inst
        recon = weight * F.mse_loss(x_recon, x, reduction="sum")
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return recon + kl, recon, kl


def probe(model, x_uint8, prior: str, latent_dim: int) -> dict:
    """The trained model's outputs on fixed inputs, to check a port of its weights: encoder
    stats of ``x``, the decoder at a fixed grid of codes, and for the decoupled prior g(z),
    log|det dg/dz| and g^-1 at the same codes."""
    import torch

    z = torch.from_numpy(np.linspace(-2.5, 2.5, 8 * latent_dim, dtype=np.float32))
    z = z.reshape(8, latent_dim)
    out = {}
    with torch.no_grad():
        out["probe_x"] = x_uint8
        out["probe_stats"] = model.encoder(to_torch(x_uint8)).numpy()
        out["probe_z"] = z.numpy()
        out["probe_decoded"] = model.decoder(z).numpy().transpose(0, 2, 3, 1)  # NHWC
        if prior == "decoupled":
            z0, log_det = model.g(z)
            out["probe_z0"], out["probe_log_det"] = z0.numpy(), log_det.numpy()
            out["probe_g_inv"] = model.g_inv(z).numpy()
    return out


def to_torch(x_uint8):
    import torch

    # NHWC -> NCHW as a copy with standard strides (a transposed view of a one-channel array
    # keeps a stride that torch reads as channels-last, which the authors' View rejects).
    x = np.transpose(x_uint8, (0, 3, 1, 2)).astype(np.float32) / 255.0  # [B, C, H, W]
    return torch.from_numpy(x.copy(order="C")).contiguous()


def main(argv=None):
    args = parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    data = np.load(args.data)
    x_train, x_val = data["x_train"], data["x_val"]

    model = build(args.checkout, args.prior, args.latent_dim)
    if args.init:
        init = np.load(args.init)
        state = {k[len("param/") :]: torch.from_numpy(init[k]) for k in init if k[:6] == "param/"}
        model.load_state_dict(state, strict=False)
    optim = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.999), eps=args.eps)
    model.train()

    steps_per_epoch = len(x_train) // args.batch_size  # drop_last
    curve = {"step": [], "loss": [], "recon": [], "kl": []}
    acc = np.zeros(3)
    order, start = None, time.time()
    for step in range(args.steps):
        if step % steps_per_epoch == 0:
            order = rng.permutation(len(x_train))
        i = (step % steps_per_epoch) * args.batch_size
        x = to_torch(x_train[order[i : i + args.batch_size]])
        loss, recon, kl = loss_terms(model, x, args.prior, args.weight)
        optim.zero_grad()
        (loss / args.batch_size if args.reduction == "mean" else loss).backward()
        optim.step()
        acc += np.array([loss.item(), recon.item(), kl.item()]) / args.batch_size
        if (step + 1) % args.log_every == 0:
            curve["step"].append(step + 1)
            for k, v in zip(("loss", "recon", "kl"), acc / args.log_every, strict=True):
                curve[k].append(v)
            acc[:] = 0
    train_seconds = time.time() - start

    # Validation terms per example (one posterior sample, as during training; no gradient).
    totals, n = np.zeros(3), 0
    with torch.no_grad():
        for i in range(0, len(x_val) - args.batch_size + 1, args.batch_size):
            x = to_torch(x_val[i : i + args.batch_size])
            totals += np.array([t.item() for t in loss_terms(model, x, args.prior, args.weight)])
            n += args.batch_size
    if args.prior == "decoupled":
        # Their flow KL leaves out the constant -d/2 per example (the Gaussian entropy's +1/2
        # per dimension against log N's); reported with it, as tfvae and the closed form do.
        totals[[0, 2]] -= 0.5 * args.latent_dim * n
    out = {f"param/{k}": v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    out.update({f"curve_{k}": np.asarray(v) for k, v in curve.items()})
    out.update(probe(model, x_val[:8], args.prior, args.latent_dim))
    out.update(
        val_loss=totals[0] / n,
        val_recon=totals[1] / n,
        val_kl=totals[2] / n,
        train_seconds=train_seconds,
    )
    np.savez(args.out, **out)
    print(
        f"{args.prior} seed {args.seed}: {args.steps} steps in {train_seconds:.0f} s, "
        f"val loss {totals[0] / n:.3f} (recon {totals[1] / n:.3f}, kl {totals[2] / n:.3f})"
    )


if __name__ == "__main__":
    main()
