"""tfvae's configs: every module here but the shared helpers is one runnable config,
``python -m tfvae.train --config=configs/<name>.py``."""

import os

_HELPERS = ("__init__", "common", "collapse_common")
# The runnable configs by name, for the tests that check each of them.
NAMES = sorted(
    f[:-3]
    for f in os.listdir(os.path.dirname(os.path.abspath(__file__)))
    if f.endswith(".py") and f[:-3] not in _HELPERS
)
