from nobarriers.jobs import autoneb_job
from nobarriers.progress import setup_logging

setup_logging(snakemake.log[0])
autoneb_job(
    row=snakemake.params.row,
    minimum_a=snakemake.input.a,
    minimum_b=snakemake.input.b,
    out_path=snakemake.output[0],
    state_path=snakemake.params.state,
    config_hash=snakemake.params.config_hash,
    minima_hash=snakemake.params.minima_hash,
    data_dir=snakemake.params.data_dir,
    device=snakemake.params.device,
    threads=snakemake.threads,
)
