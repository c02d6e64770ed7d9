from nobarriers.jobs import slice_job
from nobarriers.progress import setup_logging

setup_logging(snakemake.log[0])
slice_job(
    row=snakemake.params.row,
    landscape_json=snakemake.input.landscape,
    mst_json=snakemake.input.mst,
    outputs=dict(snakemake.output.items()),
    resolution=snakemake.params.resolution,
    margin=snakemake.params.margin,
    path_hash=snakemake.params.path_hash,
    config_hash=snakemake.params.config_hash,
    data_dir=snakemake.params.data_dir,
    device=snakemake.params.device,
    threads=snakemake.threads,
)
