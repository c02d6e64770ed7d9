from nobarriers.core.progress import job_log
from nobarriers.stages.report import table_b1_job

with job_log(snakemake.log[0], snakemake.rule, snakemake.output):
    table_b1_job(
        row_jsons=snakemake.input.rows,
        pairs_csvs=snakemake.input.pairs,
        # the CSVs' checksum files are written with them (nobarriers.formats.csv_tables)
        **{k: v for k, v in snakemake.output.items() if k != "checksums"},
        expected_hashes=snakemake.params.expected_hashes,
    )
