"""nobarriers: AutoNEB minimum energy paths between neural-network minima.

Reproduction of Draxler et al., "Essentially No Barriers in Neural Network Energy Landscape",
ICML 2018. The public API (see README.md, "Use the engine on your own energy"):

- energies: :class:`FunctionEnergy` (any differentiable function of a flat vector) and
  :class:`ModelEnergy` (a network's training loss over its trainable parameters);
- paths: :func:`run_autoneb` with :class:`AutoNEBConfig` / :class:`Cycle` (Algorithms 1-2),
  :func:`evaluate_path` / :func:`evaluate_line` (dense evaluation with exact BatchNorm statistics);
- landscapes: :func:`next_pairs`, :func:`minimum_spanning_tree`, :func:`ultrametric_bounds`,
  :func:`single_linkage` (Algorithm 3);
- storage: :func:`write_path` / :func:`read_path` (HDF5), :func:`load_minimum`
  (:mod:`nobarriers.formats`).

Names are imported lazily, so ``import nobarriers.settings.config`` (the workflow's start-up)
stays light.
"""

from importlib import import_module

from .core.version import VERSION as __version__

_PUBLIC = {
    "Energy": "engine.energy",
    "FunctionEnergy": "engine.energy",
    "ModelEnergy": "engine.model_energy",
    "point_of": "nn.points",
    "load_point": "nn.points",
    "recompute_bn_statistics": "nn.points",
    "AutoNEBConfig": "settings.autoneb_config",
    "Cycle": "settings.autoneb_config",
    "EnergySettings": "settings.autoneb_config",
    "NEBSettings": "settings.autoneb_config",
    "paper_schedule": "settings.autoneb_config",
    "AutoNEBResult": "engine.autoneb",
    "run_autoneb": "engine.autoneb",
    "evaluate_path": "engine.evaluate",
    "evaluate_line": "engine.evaluate",
    "evaluate_point": "engine.evaluate",
    "next_pairs": "engine.landscape",
    "minimum_spanning_tree": "engine.landscape",
    "ultrametric_bounds": "engine.landscape",
    "single_linkage": "engine.landscape",
    "write_path": "formats.pathfile",
    "read_path": "formats.pathfile",
    "load_minimum": "formats.minimum",
    "train_minimum": "engine.train",
    "build_model": "models",
    "load_dataset": "datasets",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(import_module(f".{_PUBLIC[name]}", __name__), name)
    raise AttributeError(f"module 'nobarriers' has no attribute {name!r}")
