from nobarriers.jobs import evaluate_path_job
from nobarriers.progress import setup_logging

setup_logging(snakemake.log[0])
evaluate_path_job(
    row=snakemake.params.row,
    path_file=snakemake.input.path,
    out_path=snakemake.output[0],
    config_hash=snakemake.params.config_hash,
    path_hash=snakemake.params.path_hash,
    data_dir=snakemake.params.data_dir,
    device=snakemake.params.device,
    threads=snakemake.threads,
)
