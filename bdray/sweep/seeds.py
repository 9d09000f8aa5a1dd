"""Seed replicas: a sweep with ``seeds=N`` runs every configuration N times, replica i with every
seed of the config shifted by i (the method's ``seed``, the attack's ``backdoor.seed`` -- so each
replica has its own backdoored model --, ``subset_seed`` and any other ``*_seed`` field).

Each replica is its own Tune trial (parallel, checkpointed and resumed like any other); the
search algorithm sees one trial per configuration, told the replicas' mean of every objective.
Rows carry ``seed_index`` and ``config_id`` (the configuration without its seeds), which is what
the analysis groups by for means and confidence intervals.

``trial_config`` also merges a ``variant`` parameter (a dict of field changes made together, such
as the clean model ``{"backdoor.poison_rate": 0.0}`` among the attacks of a grid).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, Mapping

from bdray.config import Config, ConfigError

SEED_INDEX = "seed_index"  # the key Tune's config carries for a replica (absent when seeds == 1)
# A search-space key whose values are dicts of field changes applied together, e.g. a grid over
# threats {"backdoor.attack": "blend"} and {"backdoor.poison_rate": 0.0} (the clean model)
VARIANT = "variant"


def _is_seed_field(name: str) -> bool:
    return name == "seed" or name.endswith("_seed")


def shift_seeds(cfg: Config, offset: int) -> Config:
    """The config with every seed field (nested configs too) increased by ``offset``."""
    if offset == 0:
        return cfg
    changes: Dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if isinstance(value, Config):
            changes[f.name] = shift_seeds(value, offset)
        elif _is_seed_field(f.name) and isinstance(value, int) and not isinstance(value, bool):
            changes[f.name] = value + offset
    return dataclasses.replace(cfg, **changes)


def trial_config(base_config: Config, params: Mapping[str, Any]) -> Config:
    """A trial's config: the sweep's base config with the sampled parameters, seeds shifted by the
    replica's ``seed_index``.  Keys that are not config fields (Tune's own) must be dropped first."""
    params = expand_variant(params)
    index = int(params.pop(SEED_INDEX, 0))
    return shift_seeds(base_config.replace(**params), index)


def expand_variant(params: Mapping[str, Any]) -> Dict[str, Any]:
    """The parameters with a ``variant`` (a dict of field changes) merged in."""
    params = dict(params)
    variant = params.pop(VARIANT, None) or {}
    if not isinstance(variant, Mapping):
        raise ConfigError(VARIANT, variant, "a dict of config field changes, e.g. {'backdoor.poison_rate': 0.0}")
    return {**params, **variant}


def config_id(base_config: Config, params: Mapping[str, Any]) -> str:
    """What identifies a configuration across its seed replicas: the digest of the config with
    the replica index removed (12 hex digits)."""
    params = {k: v for k, v in expand_variant(params).items() if k != SEED_INDEX}
    return base_config.replace(**params).digest()[:12]
