from nobarriers.core.progress import job_log
from nobarriers.stages.report import families_job

with job_log(snakemake.log[0], snakemake.rule, snakemake.output):
    families_job(
        row=snakemake.params.row,
        minima_paths=snakemake.input.minima,
        landscape_json=snakemake.input.landscape,
        mst_json=snakemake.input.mst,
        timings=dict(snakemake.params.timings),
        out_csv=snakemake.output.csv,
        png=snakemake.output.png,
        pdf=snakemake.output.pdf,
    )
