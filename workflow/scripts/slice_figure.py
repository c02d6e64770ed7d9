from nobarriers.progress import setup_logging
from nobarriers.stages.common import JobRuntime
from nobarriers.stages.report import slice_job

setup_logging(snakemake.log[0])
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
