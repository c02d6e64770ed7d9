from nobarriers.jobs import mst_paths_job
from nobarriers.progress import setup_logging

setup_logging(snakemake.log[0])
mst_paths_job(
    evaluated_files=snakemake.input.evaluated,
    path_files=snakemake.input.paths,
    out_json=snakemake.output[0],
)
