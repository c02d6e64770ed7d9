from nobarriers.core.progress import job_log
from nobarriers.stages.compute import JobRuntime
from nobarriers.stages.minima import import_job

with job_log(snakemake.log[0], snakemake.rule, snakemake.output):
    import_job(
        row=snakemake.params.row,
        seed=int(snakemake.wildcards.seed),
        source=snakemake.input.source,
        out_path=snakemake.output[0],
        runtime=JobRuntime.from_snakemake(snakemake),
    )
