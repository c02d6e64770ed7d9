"""What a family of networks declares (:class:`ModelFamily`), and the paper's training recipes.

A family is one file in :mod:`nobarriers.models.families` that defines ``FAMILY``: the grammar of
its names and what a name means, how the paper writes it, its default training recipe, and its
builder. Torch-free: the workflow checks model names at start-up without importing torch; a
family imports torch inside its builder.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

#: He et al. (2016), the paper's recipe for CNNs and ResNets (Section 4.2, Table B.1: 136 epochs)
HE_ET_AL_RECIPE: dict = {
    "epochs": 136,
    "batch_size": 128,
    "lr": 0.1,
    "momentum": 0.9,
    "nesterov": False,
    "weight_decay": 1e-4,
    "lr_milestones": [0.5, 0.75],
    "lr_gamma": 0.1,
    "augment": True,
    "eval_batch_size": 1000,
}

#: Huang et al. (2017), the paper's recipe for DenseNets (266 epochs, batch 64, Nesterov)
HUANG_ET_AL_RECIPE: dict = {**HE_ET_AL_RECIPE, "epochs": 266, "batch_size": 64, "nesterov": True}


@dataclass(frozen=True)
class ModelFamily:
    """One family of networks.

    ``name`` is the family's key wherever settings are grouped by family (its recipe's name,
    ``resources.families.<name>``, the figures' grouping). ``regex`` is the grammar of its model
    names (lower case, matched in full); ``parse(match)`` turns a match into the model's
    hyper-parameters and raises :class:`~nobarriers.core.errors.ConfigError` for impossible ones
    (a ResNet depth that is not 6n+2); ``label(params)`` is the name as the paper writes it,
    ``summary(params)`` one line of what the network is. ``recipe`` is the family's default
    training recipe (a complete recipe, see the schema's ``recipe``). ``build(params,
    num_classes, input_shape)`` returns a freshly initialised ``torch.nn.Module``.
    ``patterns`` are the name forms for messages; ``paper_names`` the names the paper uses."""

    name: str
    patterns: tuple[str, ...]
    regex: str
    parse: Callable[[re.Match], dict]
    label: Callable[[dict], str]
    summary: Callable[[dict], str]
    recipe: dict
    build: Callable[[dict, int, tuple], object]
    paper_names: tuple[str, ...] = field(default=())

    def match(self, name: str) -> re.Match | None:
        return re.fullmatch(self.regex, name)
