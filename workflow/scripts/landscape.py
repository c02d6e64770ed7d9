from nobarriers.progress import setup_logging
from nobarriers.stages.paths import landscape_job

setup_logging(snakemake.log[0])
landscape_job(
    row=snakemake.params.row,
    minima_paths=snakemake.input.minima,
    path_files=snakemake.input.paths,
    out_json=snakemake.output.json,
)
