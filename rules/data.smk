# Local: downloads need the login node's network (compute nodes often have none).
localrules:
    prepare_dataset,


rule prepare_dataset:
    output:
        f"{R}/data/{{dataset}}.json",
    log:
        f"{R}/logs/data/{{dataset}}.log",
    conda:
        ENV
    threads: 1
    resources:
        runtime=60,
        mem_mb=4000,
    params:
        data_dir=config["data_dir"],
    script:
        "../workflow/scripts/prepare_dataset.py"
