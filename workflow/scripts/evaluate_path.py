from nobarriers.core.progress import job_log
from nobarriers.stages.compute import JobRuntime
from nobarriers.stages.evaluation import evaluate_path_job

with job_log(snakemake.log[0], snakemake.rule, snakemake.output):
    evaluate_path_job(
        row=snakemake.params.row,
        path_file=snakemake.input.path,
        out_path=snakemake.output[0],
        runtime=JobRuntime.from_snakemake(snakemake),
    )
