#!/usr/bin/env bash
# The one setup command (see README.md): creates .venv/ at the repository root, installs tfvae
# with its test extras, and installs the offline default dataset (Fashion-MNIST, Debian's
# dataset-fashion-mnist) where the system package manager allows.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[test]"

# Where Debian's package puts the files (tfvae.data.DEBIAN_FASHION_MNIST_DIR); tests point the
# check elsewhere to see what happens when the install fails.
fashion="${TFVAE_FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}"

install_dataset() {
  # Fails (status != 0) when apt-get is missing, not permitted, or fails (a held lock, no
  # network); the caller says so instead of reporting success.
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist
  elif command -v apt-get >/dev/null 2>&1 && command -v sudo >/dev/null 2>&1; then
    sudo apt-get update -qq && sudo apt-get install -y -qq dataset-fashion-mnist
  else
    return 1
  fi
}

if [ ! -f "$fashion/train-images-idx3-ubyte.gz" ] && ! install_dataset; then
  echo "tfvae is installed, but the default dataset (Fashion-MNIST) was NOT: apt-get failed" \
    "or is not available. Install it with  sudo apt-get install dataset-fashion-mnist  (once" \
    "the package manager is free), or put the Fashion-MNIST IDX files in a folder and pass" \
    "--config.data.path=<folder>. Tests and configs that read the default dataset fail" \
    "until then." >&2
  exit 0
fi
echo "tfvae is set up: run the tests with  .venv/bin/python -m pytest -n 2"
