from nobarriers.progress import setup_logging
from nobarriers.stages.report import table_b1_job

setup_logging(snakemake.log[0])
table_b1_job(
    row_jsons=snakemake.input.rows,
    pairs_csvs=snakemake.input.pairs,
    **dict(snakemake.output.items()),
    expected_hashes=snakemake.params.expected_hashes,
)
