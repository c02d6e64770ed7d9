localrules:
    select_pairs,
    landscape,


checkpoint select_pairs:
    input:
        minima=minima_files,
        paths=paths_before_round,
    output:
        f"{R}/{{dataset}}/{{arch}}/{ROUNDS}/{{round}}.json",
    log:
        f"{R}/logs/{{dataset}}/{{arch}}/{ROUNDS}/{{round}}.log",
    conda:
        ENV
    threads: 1
    resources:
        runtime=10,
        mem_mb=2000,
    params:
        max_paths=config["exploration"]["max_paths"],
        pairs_per_round=config["exploration"]["pairs_per_round"],
        config_hash=row_hash("paths"),
    script:
        "../workflow/scripts/select_pairs.py"


rule autoneb_path:
    input:
        dataset=f"{R}/data/{{dataset}}.json",
        a=f"{R}/{{dataset}}/{{arch}}/minima/{{a}}.safetensors",
        b=f"{R}/{{dataset}}/{{arch}}/minima/{{b}}.safetensors",
    output:
        f"{R}/{{dataset}}/{{arch}}/paths/{{a}}-{{b}}.h5",
    log:
        f"{R}/logs/{{dataset}}/{{arch}}/paths/{{a}}-{{b}}.log",
    benchmark:
        f"{R}/benchmarks/{{dataset}}/{{arch}}/paths/{{a}}-{{b}}.tsv"
    conda:
        ENV
    threads: config["threads"]["autoneb"]
    resources:
        runtime=runtime_minutes(480),
        mem_mb=16000,
        gpu=gpus,
    params:
        row=row_settings("paths"),
        config_hash=row_hash("paths"),
        minima_hash=row_hash("minima"),
        # Kept when the job dies (not an output): a rerun resumes after the last finished cycle.
        state=f"{R}/{{dataset}}/{{arch}}/paths/{{a}}-{{b}}.state.pt",
        data_dir=config["data_dir"],
        device=config["device"],
    script:
        "../workflow/scripts/autoneb_path.py"


checkpoint landscape:
    input:
        minima=minima_files,
        paths=all_paths,
    output:
        json=f"{R}/{{dataset}}/{{arch}}/{ROUNDS}/landscape.json",
    log:
        f"{R}/logs/{{dataset}}/{{arch}}/{ROUNDS}/landscape.log",
    conda:
        ENV
    threads: 1
    resources:
        runtime=10,
        mem_mb=2000,
    params:
        config_hash=row_hash("paths"),
    script:
        "../workflow/scripts/landscape.py"
