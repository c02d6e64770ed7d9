localrules:
    mst_paths,


rule evaluate_path:
    input:
        dataset=f"{RESULTS}/data/{{dataset}}.json",
        path=f"{RESULTS}/{{dataset}}/{{arch}}/paths/{{a}}-{{b}}.h5",
    output:
        f"{RESULTS}/{{dataset}}/{{arch}}/evaluated/{{a}}-{{b}}.h5",
    log:
        f"{RESULTS}/logs/{{dataset}}/{{arch}}/evaluated/{{a}}-{{b}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{dataset}}/{{arch}}/evaluated/{{a}}-{{b}}.tsv"
    conda:
        CONDA_ENV
    threads: config["threads"]["evaluate"]
    resources:
        runtime=runtime_minutes(120),
        mem_mb=16000,
        gpu=gpus,
    params:
        row=row_settings("evaluation"),
    script:
        "../workflow/scripts/evaluate_path.py"


# Collects the MST's paths and their dense evaluations under the budget's folder. Jobs below take
# this file as a plain input: Snakemake re-evaluates checkpoint-dependent input functions only
# for outputs it must build, so a changed budget reaches the table and figures through this
# file's changed name.
rule mst_paths:
    input:
        landscape=f"{RESULTS}/{{dataset}}/{{arch}}/{ROUNDS}/landscape.json",
        evaluated=evaluated_mst_paths,
        paths=mst_path_files,
    output:
        f"{RESULTS}/{{dataset}}/{{arch}}/{ROUNDS}/mst_paths.json",
    log:
        f"{RESULTS}/logs/{{dataset}}/{{arch}}/{ROUNDS}/mst_paths.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=5,
        mem_mb=1000,
    script:
        "../workflow/scripts/mst_paths.py"
