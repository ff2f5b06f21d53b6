"""Target registry: `type =` in a [target:NAME] section picks the module.

Modules are imported only when a target of that type is configured, so the
engine never imports an SDK it does not use.
"""

from __future__ import annotations

import importlib

from mirrord.config import TargetConfig
from mirrord.targets.base import Target

_MODULES = {
    "local": ("mirrord.targets.local", "LocalTarget"),
    "s3": ("mirrord.targets.s3", "S3Target"),
    "rsync": ("mirrord.targets.rsync", "RsyncTarget"),
}


def create(cfg: TargetConfig) -> Target:
    """Build the target a config section describes (not yet opened)."""
    module_name, class_name = _MODULES[cfg.type]
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls.from_config(cfg)


__all__ = ["create"]
