from nobarriers.jobs import train_job
from nobarriers.progress import setup_logging

setup_logging(snakemake.log[0])
train_job(
    row=snakemake.params.row,
    seed=int(snakemake.wildcards.seed),
    out_path=snakemake.output[0],
    checkpoint=snakemake.params.checkpoint,
    config_hash=snakemake.params.config_hash,
    data_dir=snakemake.params.data_dir,
    device=snakemake.params.device,
    threads=snakemake.threads,
)
