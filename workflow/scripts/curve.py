from nobarriers.core.progress import job_log
from nobarriers.stages.compute import JobRuntime
from nobarriers.stages.curves import curve_job

with job_log(snakemake.log[0], snakemake.rule, snakemake.output):
    curve_job(
        row=snakemake.params.row,
        kind=snakemake.wildcards.kind,
        minimum_a=snakemake.input.a,
        minimum_b=snakemake.input.b,
        out_curve=snakemake.output.curve,
        out_evaluation=snakemake.output.evaluated,
        state_path=snakemake.params.state,
        runtime=JobRuntime.from_snakemake(snakemake),
        times=snakemake.params.times,
    )
