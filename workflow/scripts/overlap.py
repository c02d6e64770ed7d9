from nobarriers.jobs import overlap_job
from nobarriers.progress import setup_logging

setup_logging(snakemake.log[0])
overlap_job(
    minima_paths=snakemake.input.minima,
    dataset=snakemake.wildcards.dataset,
    data_dir=snakemake.params.data_dir,
    outputs=dict(snakemake.output.items()),
    threshold=snakemake.params.threshold,
    metric=snakemake.params.metric,
    config_hash=snakemake.params.config_hash,
)
