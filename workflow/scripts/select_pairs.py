from nobarriers.core.progress import job_log
from nobarriers.stages.exploration import select_pairs_job

with job_log(snakemake.log[0], snakemake.rule, snakemake.output):
    select_pairs_job(
        row=snakemake.params.row,
        minima_paths=snakemake.input.minima,
        path_files=snakemake.input.paths,
        out_json=snakemake.output[0],
        round_index=int(snakemake.wildcards.round),
        exploration=snakemake.params.exploration,
    )
