from nobarriers.core.progress import job_log
from nobarriers.stages.compute import JobRuntime
from nobarriers.stages.minima import train_job

with job_log(snakemake.log[0], snakemake.rule, snakemake.output):
    train_job(
        row=snakemake.params.row,
        seed=int(snakemake.wildcards.seed),
        out_path=snakemake.output[0],
        checkpoint=snakemake.params.checkpoint,
        runtime=JobRuntime.from_snakemake(snakemake),
    )
