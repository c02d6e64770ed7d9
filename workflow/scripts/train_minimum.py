from nobarriers.progress import setup_logging
from nobarriers.stages.common import JobRuntime
from nobarriers.stages.minima import train_job

setup_logging(snakemake.log[0])
train_job(
    row=snakemake.params.row,
    seed=int(snakemake.wildcards.seed),
    out_path=snakemake.output[0],
    checkpoint=snakemake.params.checkpoint,
    runtime=JobRuntime.from_snakemake(snakemake),
)
