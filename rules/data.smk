rule prepare_dataset:
    output:
        f"{R}/data/{{dataset}}.json",
    log:
        f"{R}/logs/data/{{dataset}}.log",
    params:
        data_dir=config["data_dir"],
    threads: 1
    resources:
        runtime=60,
        mem_mb=4000,
    conda:
        ENV
    script:
        "../workflow/scripts/prepare_dataset.py"
