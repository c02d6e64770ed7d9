from nobarriers.core.progress import job_log
from nobarriers.stages.compute import JobRuntime
from nobarriers.stages.overlap import overlap_job

with job_log(snakemake.log[0], snakemake.rule, snakemake.output):
    overlap_job(
        row=snakemake.params.row,
        minima_paths=snakemake.input.minima,
        runtime=JobRuntime.from_snakemake(snakemake),
        pairs_csv=snakemake.output.pairs,
        matrix_csv=snakemake.output.matrix,
        png=snakemake.output.png,
        pdf=snakemake.output.pdf,
        threshold=snakemake.params.threshold,
        metric=snakemake.params.metric,
    )
