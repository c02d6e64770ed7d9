from nobarriers.core.progress import job_log
from nobarriers.stages.report import repeats_figure_job

with job_log(snakemake.log[0], snakemake.rule, snakemake.output):
    repeats_figure_job(
        row=snakemake.params.row,
        minima_paths=snakemake.input.minima,
        landscape_json=snakemake.input.landscape,
        mst_json=snakemake.input.mst,
        png=snakemake.output.png,
        pdf=snakemake.output.pdf,
    )
