#!/usr/bin/env bash
# The one setup command (see README.md): creates .venv/ at the repository root, installs tfvae
# with its test extras, and installs the offline default dataset (Fashion-MNIST, Debian's
# dataset-fashion-mnist) and the browser of the explorer's tests (Debian's chromium and
# chromium-driver) where the system package manager allows.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[test]"

# Where Debian's packages put the files (tfvae.data.DEBIAN_FASHION_MNIST_DIR; the browser and
# driver tests/test_explore.py runs); tests point the checks elsewhere to see what happens when
# an install fails.
fashion="${TFVAE_FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}"
chromium="${TFVAE_CHROMIUM:-/usr/bin/chromium}"
chromedriver="${TFVAE_CHROMEDRIVER:-/usr/bin/chromedriver}"

install_packages() {
  # Installs the Debian packages "$@". Fails (status != 0) when apt-get is missing, not
  # permitted, or fails (a held lock, no network); the caller says so instead of reporting
  # success.
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq "$@"
  elif command -v apt-get >/dev/null 2>&1 && command -v sudo >/dev/null 2>&1; then
    sudo apt-get update -qq && sudo apt-get install -y -qq "$@"
  else
    return 1
  fi
}

complete=1
if [ ! -f "$fashion/train-images-idx3-ubyte.gz" ] && ! install_packages dataset-fashion-mnist; then
  echo "tfvae is installed, but the default dataset (Fashion-MNIST) was NOT: apt-get failed" \
    "or is not available. Install it with  sudo apt-get install dataset-fashion-mnist  (once" \
    "the package manager is free), or put the Fashion-MNIST IDX files in a folder and pass" \
    "--config.data.path=<folder>. Tests and configs that read the default dataset fail" \
    "until then." >&2
  complete=0
fi
# The explorer's browser tests drive Debian's Chromium through its chromedriver (Selenium is
# pointed at both and never downloads a browser).
if { [ ! -x "$chromium" ] || [ ! -x "$chromedriver" ]; } \
  && ! install_packages chromium chromium-driver; then
  echo "tfvae is installed, but Chromium was NOT: apt-get failed or is not available. Install" \
    "it with  sudo apt-get install chromium chromium-driver  (once the package manager is" \
    "free). The explorer's browser tests (tests/test_explore.py) fail until then." >&2
  complete=0
fi
if [ "$complete" = 1 ]; then
  echo "tfvae is set up: run the tests with  .venv/bin/python -m pytest -n 2"
fi
