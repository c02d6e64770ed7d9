from nobarriers.jobs import select_pairs_job
from nobarriers.progress import setup_logging

setup_logging(snakemake.log[0])
select_pairs_job(
    minima_paths=snakemake.input.minima,
    path_files=snakemake.input.paths,
    out_json=snakemake.output[0],
    round_index=int(snakemake.wildcards.round),
    max_paths=snakemake.params.max_paths,
    pairs_per_round=snakemake.params.pairs_per_round,
    config_hash=snakemake.params.config_hash,
)
