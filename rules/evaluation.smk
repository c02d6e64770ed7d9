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
        **device_resources(),
        runtime=job_runtime("evaluate_path"),
        mem_mb=job_memory("evaluate_path"),
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
        aligned=aligned_mst_paths,
        curves=curve_files,
        curve_evaluations=curve_evaluations,
        repeats=repeat_files,
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


rule slice_figure:
    input:
        dataset=f"{RESULTS}/data/{{dataset}}.json",
        landscape=f"{RESULTS}/{{dataset}}/{{arch}}/{ROUNDS}/landscape.json",
        mst=f"{RESULTS}/{{dataset}}/{{arch}}/{ROUNDS}/mst_paths.json",
    output:
        slice_png=report(
            f"{RESULTS}/figures/{{dataset}}/{{arch}}/fig1_slice.png",
            caption="../report/fig1_slice.rst",
            category="Figures per architecture",
            subcategory="{dataset} {arch}",
            labels={
                "figure": "fig1_slice",
                "dataset": "{dataset}",
                "architecture": "{arch}",
            },
        ),
        slice_pdf=f"{RESULTS}/figures/{{dataset}}/{{arch}}/fig1_slice.pdf",
    log:
        f"{RESULTS}/logs/{{dataset}}/{{arch}}/slice_figure.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{dataset}}/{{arch}}/slice_figure.tsv"
    conda:
        CONDA_ENV
    threads: config["threads"]["evaluate"]
    resources:
        **device_resources(),
        runtime=job_runtime("slice_figure"),
        mem_mb=job_memory("slice_figure"),
    params:
        row=row_settings("evaluation"),
        resolution=config["figures"]["slice_resolution"],
        margin=config["figures"]["slice_margin"],
    script:
        "../workflow/scripts/slice_figure.py"


# evaluation.ensemble_sizes: ensembles of K independently trained minima, beside the ensembles
# along the paths
rule independent_ensembles:
    input:
        dataset=f"{RESULTS}/data/{{dataset}}.json",
        minima=minima_files,
    output:
        f"{RESULTS}/{{dataset}}/{{arch}}/ensembles/independent.json",
    log:
        f"{RESULTS}/logs/{{dataset}}/{{arch}}/independent_ensembles.log",
    conda:
        CONDA_ENV
    threads: config["threads"]["evaluate"]
    resources:
        **device_resources(),
        runtime=job_runtime("independent_ensembles"),
        mem_mb=job_memory("independent_ensembles"),
    params:
        row=row_settings("evaluation"),
    script:
        "../workflow/scripts/independent_ensembles.py"
