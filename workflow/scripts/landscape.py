from nobarriers.jobs import landscape_job
from nobarriers.progress import setup_logging

setup_logging(snakemake.log[0])
landscape_job(
    minima_paths=snakemake.input.minima,
    path_files=snakemake.input.paths,
    out_json=snakemake.output.json,
    config_hash=snakemake.params.config_hash,
)
