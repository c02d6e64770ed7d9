from nobarriers.progress import setup_logging
from nobarriers.stages.data import prepare_dataset_job

setup_logging(snakemake.log[0])
prepare_dataset_job(
    dataset=snakemake.wildcards.dataset,
    data_dir=snakemake.config["data_dir"],
    out_json=snakemake.output[0],
)
