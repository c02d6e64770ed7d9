from nobarriers.core.progress import job_log
from nobarriers.stages.report import table_row_job

with job_log(snakemake.log[0], snakemake.rule, snakemake.output):
    table_row_job(
        row=snakemake.params.row,
        minima_paths=snakemake.input.minima,
        landscape_json=snakemake.input.landscape,
        mst_json=snakemake.input.mst,
        overlap_csv=snakemake.input.overlap,
        out_row_json=snakemake.output.row,
        out_pairs_csv=snakemake.output.pairs,
        independent_json=snakemake.input.independent,
    )
