localrules:
    select_pairs,
    landscape,


checkpoint select_pairs:
    input:
        minima=minima_files,
        paths=paths_before_round,
    output:
        f"{RESULTS}/{{dataset}}/{{arch}}/{ROUNDS}/{{round}}.json",
    log:
        f"{RESULTS}/logs/{{dataset}}/{{arch}}/{ROUNDS}/{{round}}.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=10,
        mem_mb=2000,
    params:
        row=row_settings("paths"),
        exploration=config["exploration"],
    script:
        "../workflow/scripts/select_pairs.py"


checkpoint landscape:
    input:
        minima=minima_files,
        paths=all_paths,
    output:
        json=f"{RESULTS}/{{dataset}}/{{arch}}/{ROUNDS}/landscape.json",
    log:
        f"{RESULTS}/logs/{{dataset}}/{{arch}}/{ROUNDS}/landscape.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=10,
        mem_mb=2000,
    params:
        row=row_settings("paths"),
    script:
        "../workflow/scripts/landscape.py"
