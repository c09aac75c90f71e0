"""tfvae: regularized VAEs with decoupled priors, NE-VAE and MaskAAE."""
