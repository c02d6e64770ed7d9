from nobarriers.core.progress import job_log
from nobarriers.stages.compute import JobRuntime
from nobarriers.stages.evaluation import slice_job

with job_log(snakemake.log[0], snakemake.rule, snakemake.output):
    slice_job(
        row=snakemake.params.row,
        landscape_json=snakemake.input.landscape,
        mst_json=snakemake.input.mst,
        png=snakemake.output.slice_png,
        pdf=snakemake.output.slice_pdf,
        resolution=snakemake.params.resolution,
        margin=snakemake.params.margin,
        runtime=JobRuntime.from_snakemake(snakemake),
    )
