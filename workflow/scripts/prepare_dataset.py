from nobarriers.jobs import prepare_dataset_job
from nobarriers.progress import setup_logging

setup_logging(snakemake.log[0])
prepare_dataset_job(snakemake.wildcards.dataset, snakemake.params.data_dir, snakemake.output[0])
