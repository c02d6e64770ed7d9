from nobarriers.core.progress import job_log
from nobarriers.stages.exploration import mst_paths_job

with job_log(snakemake.log[0], snakemake.rule, snakemake.output):
    mst_paths_job(
        evaluated_files=snakemake.input.evaluated,
        path_files=snakemake.input.paths,
        aligned_files=snakemake.input.aligned,
        curves=snakemake.input.curves,
        curve_evaluations=snakemake.input.curve_evaluations,
        repeats=snakemake.input.repeats,
        out_json=snakemake.output[0],
    )
