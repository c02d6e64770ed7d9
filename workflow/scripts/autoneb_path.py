from nobarriers.progress import setup_logging
from nobarriers.stages.common import JobRuntime
from nobarriers.stages.paths import autoneb_job

setup_logging(snakemake.log[0])
autoneb_job(
    row=snakemake.params.row,
    minimum_a=snakemake.input.a,
    minimum_b=snakemake.input.b,
    out_path=snakemake.output[0],
    state_path=snakemake.params.state,
    runtime=JobRuntime.from_snakemake(snakemake),
    cycle_times=snakemake.params.cycle_times,
)
