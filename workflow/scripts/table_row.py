from nobarriers.jobs import table_row_job
from nobarriers.progress import setup_logging

setup_logging(snakemake.log[0])
table_row_job(
    row=snakemake.params.row,
    minima_paths=snakemake.input.minima,
    landscape_json=snakemake.input.landscape,
    mst_json=snakemake.input.mst,
    overlap_csv=snakemake.input.overlap,
    out_row_json=snakemake.output.row,
    out_pairs_csv=snakemake.output.pairs,
    minima_hash=snakemake.params.minima_hash,
    config_hash=snakemake.params.config_hash,
)
