# Local: downloads need the login node's network (compute nodes often have none).
localrules:
    prepare_dataset,


rule prepare_dataset:
    input:
        dataset_inputs,
    output:
        f"{RESULTS}/data/{{dataset}}.json",
    log:
        f"{RESULTS}/logs/data/{{dataset}}.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=60,
        mem_mb=4000,
    params:
        data=dataset_settings,
    script:
        "../workflow/scripts/prepare_dataset.py"
