from nobarriers.progress import setup_logging
from nobarriers.stages.evaluation import mst_paths_job

setup_logging(snakemake.log[0])
mst_paths_job(
    evaluated_files=snakemake.input.evaluated,
    path_files=snakemake.input.paths,
    out_json=snakemake.output[0],
)
