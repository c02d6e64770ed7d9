from nobarriers.core.progress import job_log
from nobarriers.stages.compute import JobRuntime
from nobarriers.stages.paths import repeat_path_job

with job_log(snakemake.log[0], snakemake.rule, snakemake.output):
    repeat_path_job(
        row=snakemake.params.row,
        minimum_a=snakemake.input.a,
        minimum_b=snakemake.input.b,
        out_path=snakemake.output[0],
        state_path=snakemake.params.state,
        runtime=JobRuntime.from_snakemake(snakemake),
        repeat=int(snakemake.wildcards.repeat),
        cycle_times=snakemake.params.cycle_times,
    )
