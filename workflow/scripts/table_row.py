from nobarriers.progress import setup_logging
from nobarriers.stages.report import table_row_job

setup_logging(snakemake.log[0])
table_row_job(
    row=snakemake.params.row,
    minima_paths=snakemake.input.minima,
    landscape_json=snakemake.input.landscape,
    mst_json=snakemake.input.mst,
    overlap_csv=snakemake.input.overlap,
    out_row_json=snakemake.output.row,
    out_pairs_csv=snakemake.output.pairs,
)
