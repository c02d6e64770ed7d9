from nobarriers.progress import setup_logging
from nobarriers.stages.common import JobRuntime
from nobarriers.stages.data import prepare_dataset_job

setup_logging(snakemake.log[0])
prepare_dataset_job(
    dataset=snakemake.wildcards.dataset,
    runtime=JobRuntime.from_snakemake(snakemake),
    out_json=snakemake.output[0],
)
