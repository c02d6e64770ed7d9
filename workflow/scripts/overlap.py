from nobarriers.progress import setup_logging
from nobarriers.stages.common import JobRuntime
from nobarriers.stages.overlap import overlap_job

setup_logging(snakemake.log[0])
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
