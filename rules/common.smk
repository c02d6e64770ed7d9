import os

from nobarriers.config import WorkflowConfig, stage_hash, stage_settings
from nobarriers.formats.records import LandscapeRecord, RoundRecord

# Validate before any job is planned; fills the schema's defaults into `config` in place.
SETTINGS = WorkflowConfig(config, source="workflow configuration")

# Rules running in the conda environments of envs/ install this checkout in their post-deploy
# script (`--sdm conda` clears PYTHONPATH); it finds the checkout through this variable.
os.environ["NOBARRIERS_SOURCE"] = workflow.basedir


envvars:
    "NOBARRIERS_SOURCE",


RESULTS = config["results_dir"]
CONDA_ENV = "../envs/nobarriers.yaml"
ROWS = SETTINGS.selected_rows()


wildcard_constraints:
    dataset="[a-z0-9]+",
    arch="[a-z0-9-]+",
    seed=r"\d+",
    a=r"\d+",
    b=r"\d+",
    round=r"\d+",


def row_settings(stage):
    """Rule parameter: the row's settings that a stage's results depend on (STAGE_KEYS), so
    that a changed setting reruns exactly the jobs it affects and e.g. raising the AutoNEB
    budget never reruns training. Jobs compute their config hashes from it."""
    return lambda wildcards: stage_settings(
        SETTINGS.row(wildcards.dataset, wildcards.arch), stage
    )


def gpus(wildcards):
    return 1 if config["gpu_jobs"] else 0


def runtime_minutes(base):
    """Wall-time request that doubles with every retry (jobs resume from their checkpoints)."""
    return lambda wildcards, attempt: base * 2 ** (attempt - 1)


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


def pairs_of_round(wildcards, round_index):
    """The pairs that Algorithm 3 selected in one round (runs the checkpoint if needed)."""
    selection = checkpoints.select_pairs.get(
        dataset=wildcards.dataset, arch=wildcards.arch, round=round_index
    ).output[0]
    return RoundRecord.read(selection).pairs


def paths_before_round(wildcards):
    """Input of round r's selection: the paths of rounds 0..r-1."""
    return [
        path_file(wildcards, pair)
        for r in range(int(wildcards.round))
        for pair in pairs_of_round(wildcards, r)
    ]


def all_paths(wildcards):
    """Every path of the AutoNEB loop: rounds follow each other until one selects nothing.

    The budget (exploration.max_paths, pairs_per_round) names the rounds' folder (see ROUNDS), so
    raising it extends the loop and leaves finished paths alone.
    """
    paths, r = [], 0
    while True:
        pairs = pairs_of_round(wildcards, r)
        if not pairs:
            return paths
        paths += [path_file(wildcards, pair) for pair in pairs]
        r += 1


def mst_edges(wildcards):
    landscape = checkpoints.landscape.get(
        dataset=wildcards.dataset, arch=wildcards.arch
    ).output.json
    return LandscapeRecord.read(landscape).mst_pairs


def mst_path_files(wildcards):
    return [path_file(wildcards, pair) for pair in mst_edges(wildcards)]


def evaluated_mst_paths(wildcards):
    return [
        f"{row_dir(wildcards.dataset, wildcards.arch)}/evaluated/{a}-{b}.h5"
        for a, b in mst_edges(wildcards)
    ]


def expected_table_hashes(wildcards):
    """Config hash (evaluation stage) of every selected row: the table refuses other results."""
    return {
        f"{dataset}/{arch}": stage_hash(SETTINGS.row(dataset, arch), "evaluation")
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
    return [f"{d}/table_row.json", f"{d}/overlap/overlap.png"] + [
        f"{RESULTS}/figures/{dataset}/{arch}/{name}.{ext}"
        for name in ROW_FIGURES + ["fig1_slice"]
        for ext in ("png", "pdf")
    ]


def final_outputs():
    outputs = [f"{RESULTS}/table_b1.{ext}" for ext in ("csv", "md", "tex")]
    outputs += [f"{RESULTS}/pairs.csv"]
    outputs += [f"{RESULTS}/figures/fig5_min_vs_saddle.{ext}" for ext in ("png", "pdf")]
    for dataset, arch in ROWS:
        outputs += row_outputs(dataset, arch)
    return outputs
