# curves.families: a parametric curve (Garipov et al. 2018) between the minima of every compared
# pair, trained with the row's recipe and evaluated like the paths; curves never steer Algorithm 3.
rule curve:
    input:
        dataset=f"{RESULTS}/data/{{dataset}}.json",
        a=f"{RESULTS}/{{dataset}}/{{arch}}/minima/{{a}}.safetensors",
        b=f"{RESULTS}/{{dataset}}/{{arch}}/minima/{{b}}.safetensors",
    output:
        curve=f"{RESULTS}/{{dataset}}/{{arch}}/curves/{{kind}}/{{a}}-{{b}}.h5",
        evaluated=f"{RESULTS}/{{dataset}}/{{arch}}/curves/{{kind}}/{{a}}-{{b}}.evaluated.h5",
    log:
        f"{RESULTS}/logs/{{dataset}}/{{arch}}/curves/{{kind}}/{{a}}-{{b}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{dataset}}/{{arch}}/curves/{{kind}}/{{a}}-{{b}}.tsv"
    conda:
        CONDA_ENV
    threads: config["threads"]["autoneb"]
    resources:
        **device_resources(),
        runtime=job_runtime("curve"),
        mem_mb=job_memory("curve"),
    params:
        row=row_settings("curves"),
        # kept when the job dies (not an output): a rerun resumes after the last epoch
        state=f"{RESULTS}/{{dataset}}/{{arch}}/curves/{{kind}}/{{a}}-{{b}}.state.pt",
        times=f"{RESULTS}/benchmarks/{{dataset}}/{{arch}}/curves/{{kind}}/{{a}}-{{b}}.times.tsv",
    script:
        "../workflow/scripts/curve.py"
