from nobarriers.progress import setup_logging
from nobarriers.stages.common import JobRuntime
from nobarriers.stages.evaluation import evaluate_path_job

setup_logging(snakemake.log[0])
evaluate_path_job(
    row=snakemake.params.row,
    path_file=snakemake.input.path,
    out_path=snakemake.output[0],
    runtime=JobRuntime.from_snakemake(snakemake),
)
