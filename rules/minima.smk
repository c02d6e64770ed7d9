rule train_minimum:
    input:
        dataset=f"{RESULTS}/data/{{dataset}}.json",
    output:
        f"{RESULTS}/{{dataset}}/{{arch}}/minima/{{seed}}.safetensors",
    log:
        f"{RESULTS}/logs/{{dataset}}/{{arch}}/train/{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{dataset}}/{{arch}}/train/{{seed}}.tsv"
    conda:
        CONDA_ENV
    threads: config["threads"]["train"]
    resources:
        **device_resources(),
        runtime=job_runtime("train_minimum"),
        mem_mb=job_memory("train_minimum"),
    params:
        row=row_settings("minima"),
        # Kept when the job dies (not an output): a rerun resumes from the last epoch.
        checkpoint=f"{RESULTS}/{{dataset}}/{{arch}}/minima/{{seed}}.ckpt",
    script:
        "../workflow/scripts/train_minimum.py"
