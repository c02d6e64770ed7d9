rule train_minimum:
    input:
        dataset=f"{R}/data/{{dataset}}.json",
    output:
        f"{R}/{{dataset}}/{{arch}}/minima/{{seed}}.safetensors",
    log:
        f"{R}/logs/{{dataset}}/{{arch}}/train/{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/{{dataset}}/{{arch}}/train/{{seed}}.tsv"
    conda:
        ENV
    threads: config["threads"]["train"]
    resources:
        runtime=runtime_minutes(240),
        mem_mb=16000,
        gpu=gpus,
    params:
        row=row_settings("minima"),
        config_hash=row_hash("minima"),
        # Kept when the job dies (not an output): a rerun resumes from the last epoch.
        checkpoint=f"{R}/{{dataset}}/{{arch}}/minima/{{seed}}.ckpt",
        data_dir=config["data_dir"],
        device=config["device"],
    script:
        "../workflow/scripts/train_minimum.py"
