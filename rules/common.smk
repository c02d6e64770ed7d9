import os
import re
from pathlib import Path
from types import SimpleNamespace

from snakemake.exceptions import IncompleteCheckpointException
from snakemake.io import checkpoint_target
from snakemake.logging import logger

from nobarriers.settings.config import (
    WorkflowConfig,
    array_rules,
    check_array_jobs,
    check_cluster_settings,
    stage_hash,
    stage_settings,
)
from nobarriers.engine.landscape import sample_off_tree
from nobarriers.formats.records import LandscapeRecord, RoundRecord
from nobarriers.settings.versions import versions_of
from nobarriers.core.results_lock import hold_results_lock
from nobarriers.stages.checks import check_user_models
from nobarriers.stages.common import files_of_other_minima, longest_cycle

# Validate before any job is planned; fills the schema's defaults into `config` in place.
CONFIG_SOURCE = (
    ", ".join(map(str, workflow.overwrite_configfiles)) or "config/config.yaml"
)
SETTINGS = WorkflowConfig(config, source=CONFIG_SOURCE)

# Rules running in the conda environments of envs/ install this checkout in their post-deploy
# script (`--sdm conda` clears PYTHONPATH); it finds the checkout through this variable.
os.environ["NOBARRIERS_SOURCE"] = workflow.basedir
# libhdf5 reads this in every job (envvars: passes it to cluster jobs)
LOCKING = config["hdf5_file_locking"]
if LOCKING is not None or "HDF5_USE_FILE_LOCKING" not in os.environ:
    os.environ["HDF5_USE_FILE_LOCKING"] = "FALSE" if LOCKING is False else "TRUE"


envvars:
    "NOBARRIERS_SOURCE",
    "HDF5_USE_FILE_LOCKING",


RESULTS = config["results_dir"]
CONDA_ENV = "../envs/nobarriers.yaml"
ROWS = SETTINGS.selected_rows()

if workflow.is_main_process:  # once, at start-up: what each row runs with, and why
    for dataset, arch in ROWS:
        logger.info(f"nobarriers settings of {SETTINGS.summary(dataset, arch)}")
    # a user's network against its dataset (imports torch only for such rows)
    check_user_models(SETTINGS, ROWS)
    for (
        dataset,
        arch,
    ) in ROWS:  # files of minima the config no longer has: named, never read
        other = files_of_other_minima(
            f"{RESULTS}/{dataset}/{arch}", SETTINGS.row(dataset, arch)["seeds"]
        )
        if other:
            logger.warning(
                f"nobarriers: {len(other)} file(s) of {dataset}/{arch} belong to minima this "
                f"configuration does not have (seeds {SETTINGS.row(dataset, arch)['seeds']}) "
                f"and are not used: {', '.join(map(str, other[:6]))}"
                + (", ..." if len(other) > 6 else "")
                + "; move them aside or delete them"
            )

# rows whose minima were trained elsewhere (rows[k].minima): rule import_minimum, not training
IMPORTED_ROWS = [(d, a) for d, a in ROWS if SETTINGS.imported_files(d, a) is not None]


wildcard_constraints:
    dataset="[A-Za-z0-9][A-Za-z0-9_-]*",
    arch="[A-Za-z0-9][A-Za-z0-9_-]*",
    seed=r"\d+",
    a=r"\d+",
    b=r"\d+",
    round=r"\d+",
    repeat=r"\d+",
    kind="bezier|polychain",


def row_settings(stage):
    """Rule parameter: the row's settings that a stage's results depend on (STAGE_KEYS), so
    that a changed setting reruns exactly the jobs it affects and e.g. raising the AutoNEB
    budget never reruns training. Jobs compute their config hashes from it."""
    return lambda wildcards: stage_settings(
        SETTINGS.row(wildcards.dataset, wildcards.arch), stage
    )


def row_of(wildcards):
    """(dataset, arch) of a job whose rule has one ``row`` wildcard ("dataset/arch")."""
    return tuple(wildcards.row.split("/", 1))


def imported_rows_regex():
    """The ``row`` wildcard of import_minimum: exactly the rows that import their minima."""
    names = [re.escape(f"{d}/{a}") for d, a in IMPORTED_ROWS]
    return "|".join(names) if names else "(?!)"


def imported_source(wildcards):
    """The file a row's minimum ``seed`` is imported from (minimum k: seed seed_base + k)."""
    dataset, arch = row_of(wildcards)
    files = SETTINGS.imported_files(dataset, arch)
    return files[SETTINGS.row(dataset, arch)["seeds"].index(int(wildcards.seed))]


def dataset_inputs(wildcards):
    """Files a dataset is read from that the workflow watches (a user's .npz)."""
    return SETTINGS.dataset_source(wildcards.dataset).inputs()


def dataset_settings(wildcards):
    """What the data stage's result depends on: what identifies a user's dataset (its file's
    checksum, its loader and options; nothing for a built-in one) and the data stage's algorithm
    version. A change re-prepares it, and everything downstream follows."""
    return {
        **SETTINGS.dataset_identity(wildcards.dataset),
        "algorithm": versions_of("data"),
    }


def arrays(rule):
    """The rule's jobs go to SLURM as job arrays (--slurm-array-jobs; known once the run has
    started: a dry run shows each row's own resources)."""
    executor = getattr(workflow, "executor_settings", None)
    return rule in array_rules(getattr(executor, "array_jobs", None))


def job_runtime(rule):
    """Minutes of an attempt of a heavy rule's job (resources.<section>, family, row; retry
    growth and resources.max_runtime applied; under job arrays the most of the rows)."""
    return lambda wildcards, attempt: job_limits(rule, wildcards, attempt)["runtime"]


def job_memory(rule):
    return lambda wildcards: job_limits(rule, wildcards, 1)["mem_mb"]


def job_limits(name, wildcards, attempt):
    return SETTINGS.rule_limits(name, *job_row(wildcards), attempt, arrays(name))


def job_row(wildcards):
    """(dataset, arch) of a heavy job: its wildcards, or its `row` wildcard (import_minimum)."""
    if "row" in wildcards.keys():
        return row_of(wildcards)
    return wildcards.dataset, wildcards.arch


def device_resources():
    """The GPU request of the heavy rules, one way only (gpu_request), and their partition."""
    if not config["gpu_jobs"]:
        partition = config["partitions"]["cpu"]
        return {"slurm_partition": partition} if partition else {}
    model = config["gpu_model"]
    if config["gpu_request"] == "gres":
        out = {"gres": f"gpu:{model}:1" if model else "gpu:1"}
    else:
        out = {"gpu": 1, **({"gpu_model": model} if model else {})}
    if config["partitions"]["gpu"]:
        out["slurm_partition"] = config["partitions"]["gpu"]
    return out


def check_cluster():
    """Start-up checks, called by the Snakefile after all rules are defined. The profile's
    resources (check_cluster_settings) and each row's AutoNEB runtime against the longest
    cycle measured so far."""
    check_cluster_settings(
        config,
        workflow.resource_settings.overwrite_resources,
        workflow.resource_settings.default_resources,
        rules={r.name for r in workflow.rules},
    )
    for dataset, arch in ROWS:
        cycles = Path(RESULTS, "benchmarks", dataset, arch, "paths").glob(
            "*.cycles.tsv"
        )
        measured = longest_cycle(cycles)
        if measured is not None:
            SETTINGS.check_runtime_fits(dataset, arch, *measured)


def check_slurm_arrays():
    """At the start of a run (onstart, after the DAG is built): SLURM job arrays
    (--slurm-array-jobs) only with the settings under which the SLURM plugin submits them right
    (check_array_jobs). Other executors have no such setting."""
    executor = getattr(workflow, "executor_settings", None)
    rate = workflow.scheduling_settings.max_jobs_per_timespan
    said = check_array_jobs(
        SETTINGS, getattr(executor, "array_jobs", None), workflow.nodes, rate
    )
    for line in said:
        logger.warning(line)


def row_dir(dataset, arch):
    return f"{RESULTS}/{dataset}/{arch}"


def minima_files(wildcards):
    return [
        f"{row_dir(wildcards.dataset, wildcards.arch)}/minima/{seed}.safetensors"
        for seed in SETTINGS.row(wildcards.dataset, wildcards.arch)["seeds"]
    ]


def path_file(wildcards, pair):
    a, b = sorted(pair)
    return f"{row_dir(wildcards.dataset, wildcards.arch)}/paths/{a}-{b}.h5"


# The rounds of Algorithm 3 and the resulting landscape live in a folder named after the budget
# and the early stop. Snakemake does not re-evaluate checkpoint-dependent inputs of up-to-date
# outputs, so a changed budget must change a file name: the cheap selection rounds are replayed
# under the new budget, choose the same pairs as before up to where the old budget stopped (path
# files are keyed by pair, so nothing finished is recomputed) and then go on.
ROUNDS = SETTINGS.rounds_folder()


def checkpoint_output(producer, path):
    """A checkpoint's output, once it exists. Snakemake counts the outputs that existed at
    start-up as created; one whose job reruns in this run (its input was rebuilt) is deleted
    first, so a function reading it must wait for the job like for an unfinished checkpoint.
    """
    if not os.path.exists(path):
        raise IncompleteCheckpointException(producer.rule, checkpoint_target(path))
    return path


def pairs_of_round(wildcards, round_index):
    """The pairs that Algorithm 3 selected in one round (runs the checkpoint if needed)."""
    producer = checkpoints.select_pairs
    selection = producer.get(
        dataset=wildcards.dataset, arch=wildcards.arch, round=round_index
    ).output[0]
    return RoundRecord.read(checkpoint_output(producer, selection)).pairs


def paths_before_round(wildcards):
    """Input of round r's selection: the paths of rounds 0..r-1."""
    return [
        path_file(wildcards, pair)
        for r in range(int(wildcards.round))
        for pair in pairs_of_round(wildcards, r)
    ]


def rounds(wildcards):
    """The rounds of the AutoNEB loop as (r, pairs), the last one the empty round that ends it:
    rounds follow each other until one selects nothing."""
    r = 0
    while pairs := pairs_of_round(wildcards, r):
        yield r, pairs
        r += 1
    yield r, []


def all_paths(wildcards):
    """Every path of the AutoNEB loop. The budget (exploration.max_paths, pairs_per_round) names
    the rounds' folder (see ROUNDS), so raising it extends the loop and leaves finished paths
    alone."""
    return [
        path_file(wildcards, pair) for _, pairs in rounds(wildcards) for pair in pairs
    ]


def mst_edges(wildcards):
    producer = checkpoints.landscape
    landscape = producer.get(dataset=wildcards.dataset, arch=wildcards.arch).output.json
    return LandscapeRecord.read(checkpoint_output(producer, landscape)).mst_pairs


def sample_pairs(wildcards):
    """comparisons.sample_pairs: a seeded sample of pairs off the final MST (read from the
    landscape checkpoint), or none."""
    size = SETTINGS.row(wildcards.dataset, wildcards.arch)["comparisons"][
        "sample_pairs"
    ]
    if not size:
        return []
    producer = checkpoints.landscape
    landscape = producer.get(dataset=wildcards.dataset, arch=wildcards.arch).output.json
    record = LandscapeRecord.read(checkpoint_output(producer, landscape))
    return sample_off_tree(record.nodes, record.mst_pairs, size)


def compared_pairs(wildcards):
    """The pairs the evaluation covers: the MST's edges, then the comparison sample's."""
    return mst_edges(wildcards) + sample_pairs(wildcards)


def mst_path_files(wildcards):
    return [path_file(wildcards, pair) for pair in compared_pairs(wildcards)]


def evaluated_mst_paths(wildcards):
    return [
        f"{row_dir(wildcards.dataset, wildcards.arch)}/evaluated/{a}-{b}.h5"
        for a, b in compared_pairs(wildcards)
    ]


def aligned_mst_paths(wildcards):
    """The aligned paths of the compared pairs (alignment: weight_matching), or none."""
    if SETTINGS.row(wildcards.dataset, wildcards.arch)["alignment"] == "none":
        return []
    return [
        f"{row_dir(wildcards.dataset, wildcards.arch)}/aligned/{a}-{b}.h5"
        for a, b in compared_pairs(wildcards)
    ]


def curve_files(wildcards, suffix="h5"):
    """The curves (curves.families) of the compared pairs: ``h5`` the curves, ``evaluated.h5``
    their dense evaluations."""
    families = SETTINGS.row(wildcards.dataset, wildcards.arch)["curves"]["families"]
    d = row_dir(wildcards.dataset, wildcards.arch)
    return [
        f"{d}/curves/{kind}/{a}-{b}.{suffix}"
        for kind in families
        for a, b in compared_pairs(wildcards)
    ]


def curve_evaluations(wildcards):
    return curve_files(wildcards, "evaluated.h5")


def repeat_files(wildcards):
    """Runs 2..R of the MST edges' AutoNEB (comparisons.autoneb_repeats), or none."""
    repeats = SETTINGS.row(wildcards.dataset, wildcards.arch)["comparisons"][
        "autoneb_repeats"
    ]
    d = row_dir(wildcards.dataset, wildcards.arch)
    return [
        f"{d}/repeats/{a}-{b}/{r}.h5"
        for a, b in mst_edges(wildcards)
        for r in range(1, repeats)
    ]


def family_timings(wildcards):
    """The benchmark TSVs of the compared connections' wall times (families table)."""
    d = f"{RESULTS}/benchmarks/{wildcards.dataset}/{wildcards.arch}"
    families = SETTINGS.row(wildcards.dataset, wildcards.arch)["curves"]["families"]
    out = {}
    for a, b in compared_pairs(wildcards):
        out[f"autoneb/{a}-{b}"] = f"{d}/paths/{a}-{b}.cycles.tsv"
        for kind in families:
            out[f"{kind}/{a}-{b}"] = f"{d}/curves/{kind}/{a}-{b}.times.tsv"
    return out


def independent_ensembles(wildcards):
    """The row's ensembles of independently trained minima (evaluation.ensemble_sizes)."""
    if not SETTINGS.row(wildcards.dataset, wildcards.arch)["evaluation"][
        "ensemble_sizes"
    ]:
        return []
    return [f"{row_dir(wildcards.dataset, wildcards.arch)}/ensembles/independent.json"]


def expected_table_hashes(wildcards):
    """Config hash (report stage) of every selected row: the table refuses other results."""
    return {
        f"{dataset}/{arch}": stage_hash(SETTINGS.row(dataset, arch), "report")
        for dataset, arch in ROWS
    }


ROW_FIGURES = [
    "fig4_path_cycles",
    "fig6_learning_curves",
    "fig7_parallel_coordinates",
    "mst",
    "disconnectivity",
]


def row_outputs(dataset, arch):
    d = row_dir(dataset, arch)
    names = ROW_FIGURES + ["fig1_slice"]
    if SETTINGS.row(dataset, arch)["evaluation"]["ensemble_sizes"]:
        names.append("ensembles")
    if SETTINGS.row(dataset, arch)["alignment"] != "none":
        names.append("alignment")
    if SETTINGS.row(dataset, arch)["curves"]["families"]:
        names.append("families")
    if SETTINGS.row(dataset, arch)["comparisons"]["autoneb_repeats"] > 1:
        names.append("repeats")
    return [f"{d}/table_row.json", f"{d}/overlap/overlap.png"] + [
        f"{RESULTS}/figures/{dataset}/{arch}/{name}.{ext}"
        for name in names
        for ext in ("png", "pdf")
    ]


def final_outputs():
    outputs = [f"{RESULTS}/table_b1.{ext}" for ext in ("csv", "md", "tex")]
    outputs += [f"{RESULTS}/pairs.csv"]
    outputs += [f"{RESULTS}/figures/fig5_min_vs_saddle.{ext}" for ext in ("png", "pdf")]
    outputs += [f"{RESULTS}/figures/trends.{ext}" for ext in ("png", "pdf")]
    for dataset, arch in ROWS:
        outputs += row_outputs(dataset, arch)
    return outputs


def stored_files(wildcards):
    """Every intermediate file that the table, the figures and the report read, for every row:
    inputs of `all`. Snakemake rebuilds a missing intermediate file only if it is a target or
    a job that needs it must run anyway (so that temp() files may go), so a deleted minimum,
    path, evaluation or round file would stay deleted behind up-to-date outputs. As targets
    they are rebuilt by a plain rerun, and what depends on them follows (newer input).
    """
    files = []
    for dataset, arch in ROWS:
        row = SimpleNamespace(dataset=dataset, arch=arch)
        d = row_dir(dataset, arch)
        files += [f"{RESULTS}/data/{dataset}.json", *minima_files(row)]
        files += [f"{d}/overlap/overlap.csv", f"{d}/overlap/overlap_matrix.csv"]
        for r, pairs in rounds(row):
            files.append(f"{d}/{ROUNDS}/{r}.json")
            files += [path_file(row, pair) for pair in pairs]
        files += [f"{d}/{ROUNDS}/landscape.json", f"{d}/{ROUNDS}/mst_paths.json"]
        files += [f"{d}/pairs.csv", *evaluated_mst_paths(row), *aligned_mst_paths(row)]
        files += [*curve_files(row), *curve_evaluations(row), *repeat_files(row)]
        files += independent_ensembles(row)
    return files
