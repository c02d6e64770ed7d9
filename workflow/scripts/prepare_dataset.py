from nobarriers.core.progress import job_log
from nobarriers.stages.compute import JobRuntime
from nobarriers.stages.data import prepare_dataset_job

with job_log(snakemake.log[0], snakemake.rule, snakemake.output):
    prepare_dataset_job(
        dataset=snakemake.wildcards.dataset,
        runtime=JobRuntime.from_snakemake(snakemake),
        out_json=snakemake.output[0],
    )
