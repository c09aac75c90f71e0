"""Name lookup shared by every registry.

Registries themselves are plain module-level dicts (``OBJECTIVES``, ``PRIORS``, ``ENCODERS``,
``DECODERS``, ``DATASETS``, ...) so tests can loop over them. This module only gives them one
error message.
"""

from collections.abc import Mapping
from typing import TypeVar

from tfvae.errors import InvalidValue

T = TypeVar("T")


def lookup(registry: Mapping[str, T], name: str, kind: str) -> T:
    """Returns ``registry[name]`` or raises a ValueError listing the valid names.

    Args:
      registry: the dict to look in.
      name: the requested key.
      kind: what the registry holds ("objective", "prior", ...), used in the message.
    """
    try:
        return registry[name]
    except KeyError:
        valid = ", ".join(sorted(registry))
        raise InvalidValue(f"Unknown {kind} {name!r}. Valid {kind}s: {valid}.") from None
