from nobarriers.jobs import row_figures_job
from nobarriers.progress import setup_logging

setup_logging(snakemake.log[0])
row_figures_job(
    minima_paths=snakemake.input.minima,
    row_json=snakemake.input.row,
    landscape_json=snakemake.input.landscape,
    mst_json=snakemake.input.mst,
    outputs=dict(snakemake.output.items()),
    cycles=snakemake.params.cycles,
    minima_hash=snakemake.params.minima_hash,
    path_hash=snakemake.params.path_hash,
    config_hash=snakemake.params.config_hash,
)
