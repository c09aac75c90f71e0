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

fashion=/usr/share/datasets/fashion-mnist
if [ ! -f "$fashion/train-images-idx3-ubyte.gz" ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist
  elif command -v apt-get >/dev/null 2>&1 && command -v sudo >/dev/null 2>&1; then
    sudo apt-get update -qq && sudo apt-get install -y -qq dataset-fashion-mnist
  else
    echo "Note: could not install Debian's dataset-fashion-mnist. Put the Fashion-MNIST IDX" \
      "files in a folder and pass --config.data.path=<folder>, or use TFDS." >&2
  fi
fi
echo "tfvae is set up: run the tests with  .venv/bin/python -m pytest -n 2"
