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
        max_paths=config["exploration"]["max_paths"],
        pairs_per_round=config["exploration"]["pairs_per_round"],
        similar_saddles_rtol=config["exploration"]["similar_saddles_rtol"],
    script:
        "../workflow/scripts/select_pairs.py"


rule autoneb_path:
    input:
        dataset=f"{RESULTS}/data/{{dataset}}.json",
        a=f"{RESULTS}/{{dataset}}/{{arch}}/minima/{{a}}.safetensors",
        b=f"{RESULTS}/{{dataset}}/{{arch}}/minima/{{b}}.safetensors",
    output:
        f"{RESULTS}/{{dataset}}/{{arch}}/paths/{{a}}-{{b}}.h5",
    log:
        f"{RESULTS}/logs/{{dataset}}/{{arch}}/paths/{{a}}-{{b}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{dataset}}/{{arch}}/paths/{{a}}-{{b}}.tsv"
    conda:
        CONDA_ENV
    threads: config["threads"]["autoneb"]
    resources:
        runtime=runtime_minutes(480),
        mem_mb=16000,
        gpu=gpus,
    params:
        row=row_settings("paths"),
        # Kept when the job dies (not an output): a rerun resumes after the last finished cycle.
        state=f"{RESULTS}/{{dataset}}/{{arch}}/paths/{{a}}-{{b}}.state.pt",
        # run-specific, beside the benchmark file: the wall time of every cycle
        cycle_times=f"{RESULTS}/benchmarks/{{dataset}}/{{arch}}/paths/{{a}}-{{b}}.cycles.tsv",
    script:
        "../workflow/scripts/autoneb_path.py"


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
