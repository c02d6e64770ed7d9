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

Names are imported lazily, so ``import nobarriers.config`` (the workflow's start-up) stays light.
"""

from importlib import import_module

from .version import VERSION as __version__

_PUBLIC = {
    "Energy": "energy",
    "FunctionEnergy": "energy",
    "ModelEnergy": "model_energy",
    "point_of": "points",
    "load_point": "points",
    "recompute_bn_statistics": "points",
    "AutoNEBConfig": "autoneb_config",
    "Cycle": "autoneb_config",
    "EnergySettings": "autoneb_config",
    "NEBSettings": "autoneb_config",
    "paper_schedule": "autoneb_config",
    "AutoNEBResult": "autoneb",
    "run_autoneb": "autoneb",
    "evaluate_path": "evaluate",
    "evaluate_line": "evaluate",
    "evaluate_point": "evaluate",
    "next_pairs": "landscape",
    "minimum_spanning_tree": "landscape",
    "ultrametric_bounds": "landscape",
    "single_linkage": "landscape",
    "write_path": "formats.pathfile",
    "read_path": "formats.pathfile",
    "load_minimum": "formats.minimum",
    "train_minimum": "train",
    "build_model": "models",
    "load_dataset": "data",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(import_module(f".{_PUBLIC[name]}", __name__), name)
    raise AttributeError(f"module 'nobarriers' has no attribute {name!r}")
