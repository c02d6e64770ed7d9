"""Algorithm versions: one number per stage of the workflow, part of that stage's settings.

Snakemake reruns a job when its rule's ``params`` change; every stage's params are its settings
(:func:`nobarriers.settings.config.stage_settings`), and these numbers are part of them and of
every config hash. The scripts in ``workflow/scripts`` are thin wrappers, so Snakemake's own
code trigger never sees a change in the package: a code change that changes what a stage
computes must bump that stage's number here, and exactly its jobs and what depends on them
rerun.

Bump a stage when a change alters a number in its output files for the same settings and data:

=============  ================================================================================
``data``       how a dataset is read, split, normalised or checked (rule ``prepare_dataset``)
``minima``     training or importing a minimum: initialisation, the update, the learning curve,
               the exact BatchNorm statistics, the metrics (``train_minimum``, ``import_minimum``)
``paths``      NEB, AutoNEB, insertion, the MST weight of a path, Algorithm 3 (``autoneb_path``,
               ``select_pairs``, ``landscape``)
``evaluation`` the dense evaluation, the straight line, ensembles (``evaluate_path``, the slice)
``aligned``    weight matching and the aligned paths (``aligned_path``)
``curves``     curve training and evaluation (``curve``)
``report``     Table B.1's and pairs.csv's definitions, the figures (``table_row`` and after)
=============  ================================================================================

Do not bump for refactoring, speed, logging, messages or a new option whose default keeps the
old behaviour: those rerun nothing, by design. A bumped stage invalidates every file of that
stage and after: their config hashes change, so stale files are refused, never mixed in.
"""

from __future__ import annotations

ALGORITHM_VERSIONS: dict[str, int] = {
    "data": 1,
    "minima": 1,
    "paths": 1,
    "evaluation": 1,
    "aligned": 1,
    "curves": 1,
    "report": 1,
}

#: the stages each stage's results build on (itself included), in the order they run
BUILDS_ON: dict[str, tuple[str, ...]] = {
    "data": ("data",),
    "minima": ("data", "minima"),
    "paths": ("data", "minima", "paths"),
    "evaluation": ("data", "minima", "paths", "evaluation"),
    "aligned": ("data", "minima", "paths", "aligned"),
    "curves": ("data", "minima", "curves"),
    "report": ("data", "minima", "paths", "evaluation", "aligned", "curves", "report"),
}


def versions_of(stage: str) -> dict[str, int]:
    """``{stage: version}`` of every stage a stage's results build on."""
    return {s: ALGORITHM_VERSIONS[s] for s in BUILDS_ON[stage]}
