from nobarriers.core.progress import job_log
from nobarriers.stages.report import alignment_figure_job

with job_log(snakemake.log[0], snakemake.rule, snakemake.output):
    alignment_figure_job(
        row=snakemake.params.row,
        mst_json=snakemake.input.mst,
        png=snakemake.output.png,
        pdf=snakemake.output.pdf,
    )
