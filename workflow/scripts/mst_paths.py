from nobarriers.core.progress import job_log
from nobarriers.stages.evaluation import mst_paths_job

with job_log(snakemake.log[0], snakemake.rule, snakemake.output):
    mst_paths_job(
        evaluated_files=snakemake.input.evaluated,
        path_files=snakemake.input.paths,
        aligned_files=snakemake.input.aligned,
        out_json=snakemake.output[0],
    )
