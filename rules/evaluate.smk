rule evaluate_path:
    input:
        dataset=f"{R}/data/{{dataset}}.json",
        path=f"{R}/{{dataset}}/{{arch}}/paths/{{a}}-{{b}}.h5",
    output:
        f"{R}/{{dataset}}/{{arch}}/evaluated/{{a}}-{{b}}.h5",
    log:
        f"{R}/logs/{{dataset}}/{{arch}}/evaluated/{{a}}-{{b}}.log",
    benchmark:
        f"{R}/benchmarks/{{dataset}}/{{arch}}/evaluated/{{a}}-{{b}}.tsv"
    conda:
        ENV
    threads: config["threads"]["evaluate"]
    resources:
        runtime=runtime_minutes(120),
        mem_mb=16000,
        gpu=gpus,
    params:
        row=row_settings("evaluation"),
        config_hash=row_hash("evaluation"),
        path_hash=row_hash("paths"),
        data_dir=config["data_dir"],
        device=config["device"],
    script:
        "../workflow/scripts/evaluate_path.py"
