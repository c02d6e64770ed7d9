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


# rows[k].minima: minima trained elsewhere become minimum files of the row (exact BatchNorm
# statistics and metrics on the row's data); only those rows match the `row` wildcard.
ruleorder: import_minimum > train_minimum


rule import_minimum:
    input:
        dataset=lambda wildcards: f"{RESULTS}/data/{row_of(wildcards)[0]}.json",
        source=imported_source,
    output:
        f"{RESULTS}/{{row}}/minima/{{seed}}.safetensors",
    log:
        f"{RESULTS}/logs/{{row}}/import/{{seed}}.log",
    wildcard_constraints:
        row=imported_rows_regex(),
    conda:
        CONDA_ENV
    threads: config["threads"]["evaluate"]
    resources:
        **device_resources(),
        runtime=job_runtime("import_minimum"),
        mem_mb=job_memory("import_minimum"),
    params:
        row=lambda wildcards: stage_settings(SETTINGS.row(*row_of(wildcards)), "minima"),
    script:
        "../workflow/scripts/import_minimum.py"
