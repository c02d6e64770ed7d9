from nobarriers.core.progress import job_log
from nobarriers.stages.report import row_figures_job

with job_log(snakemake.log[0], snakemake.rule, snakemake.output):
    row_figures_job(
        row=snakemake.params.row,
        minima_paths=snakemake.input.minima,
        row_json=snakemake.input.row,
        landscape_json=snakemake.input.landscape,
        mst_json=snakemake.input.mst,
        cycles=snakemake.params.cycles,
        **dict(snakemake.output.items()),
    )
