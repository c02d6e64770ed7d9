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
        **device_resources(),
        runtime=job_runtime("autoneb_path"),
        mem_mb=job_memory("autoneb_path"),
    params:
        row=row_settings("paths"),
        # Kept when the job dies (not an output): a rerun resumes after the last finished cycle.
        state=f"{RESULTS}/{{dataset}}/{{arch}}/paths/{{a}}-{{b}}.state.pt",
        # run-specific, beside the benchmark file: the wall time of every cycle
        cycle_times=f"{RESULTS}/benchmarks/{{dataset}}/{{arch}}/paths/{{a}}-{{b}}.cycles.tsv",
    script:
        "../workflow/scripts/autoneb_path.py"


# alignment: weight_matching -- the MST edges' paths after permutation alignment (stored_files,
# mst_paths); the raw paths above stay the paper's.
rule aligned_path:
    input:
        dataset=f"{RESULTS}/data/{{dataset}}.json",
        a=f"{RESULTS}/{{dataset}}/{{arch}}/minima/{{a}}.safetensors",
        b=f"{RESULTS}/{{dataset}}/{{arch}}/minima/{{b}}.safetensors",
    output:
        f"{RESULTS}/{{dataset}}/{{arch}}/aligned/{{a}}-{{b}}.h5",
    log:
        f"{RESULTS}/logs/{{dataset}}/{{arch}}/aligned/{{a}}-{{b}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{dataset}}/{{arch}}/aligned/{{a}}-{{b}}.tsv"
    conda:
        CONDA_ENV
    threads: config["threads"]["autoneb"]
    resources:
        **device_resources(),
        runtime=job_runtime("aligned_path"),
        mem_mb=job_memory("aligned_path"),
    params:
        row=row_settings("aligned"),
        state=f"{RESULTS}/{{dataset}}/{{arch}}/aligned/{{a}}-{{b}}.state.pt",
        cycle_times=f"{RESULTS}/benchmarks/{{dataset}}/{{arch}}/aligned/{{a}}-{{b}}.cycles.tsv",
    script:
        "../workflow/scripts/aligned_path.py"


# comparisons.autoneb_repeats: runs 2..R of every MST edge's AutoNEB, other batch seeds (the
# spread of the saddle over seeds; the MST and Table B.1 stay on run 1, the paths above)
rule repeat_path:
    input:
        dataset=f"{RESULTS}/data/{{dataset}}.json",
        a=f"{RESULTS}/{{dataset}}/{{arch}}/minima/{{a}}.safetensors",
        b=f"{RESULTS}/{{dataset}}/{{arch}}/minima/{{b}}.safetensors",
    output:
        f"{RESULTS}/{{dataset}}/{{arch}}/repeats/{{a}}-{{b}}/{{repeat}}.h5",
    log:
        f"{RESULTS}/logs/{{dataset}}/{{arch}}/repeats/{{a}}-{{b}}/{{repeat}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{dataset}}/{{arch}}/repeats/{{a}}-{{b}}/{{repeat}}.tsv"
    conda:
        CONDA_ENV
    threads: config["threads"]["autoneb"]
    resources:
        **device_resources(),
        runtime=job_runtime("repeat_path"),
        mem_mb=job_memory("repeat_path"),
    params:
        row=row_settings("paths"),
        state=f"{RESULTS}/{{dataset}}/{{arch}}/repeats/{{a}}-{{b}}/{{repeat}}.state.pt",
        cycle_times=f"{RESULTS}/benchmarks/{{dataset}}/{{arch}}/repeats/{{a}}-{{b}}/{{repeat}}.cycles.tsv",
    script:
        "../workflow/scripts/repeat_path.py"
