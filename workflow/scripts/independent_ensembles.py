from nobarriers.core.progress import job_log
from nobarriers.stages.compute import JobRuntime
from nobarriers.stages.evaluation import independent_ensembles_job

with job_log(snakemake.log[0], snakemake.rule, snakemake.output):
    independent_ensembles_job(
        row=snakemake.params.row,
        minima_paths=snakemake.input.minima,
        out_json=snakemake.output[0],
        runtime=JobRuntime.from_snakemake(snakemake),
    )
