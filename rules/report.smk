localrules:
    mst_paths,
    table_row,
    table_b1,
    row_figures,


# Collects the MST's paths and their dense evaluations under the budget's folder. Jobs below take
# this file as a plain input: Snakemake re-evaluates checkpoint-dependent input functions only
# for outputs it must build, so a changed budget reaches the table and figures through this
# file's changed name.
rule mst_paths:
    input:
        landscape=f"{R}/{{dataset}}/{{arch}}/{ROUNDS}/landscape.json",
        evaluated=evaluated_mst_paths,
        paths=mst_path_files,
    output:
        f"{R}/{{dataset}}/{{arch}}/{ROUNDS}/mst_paths.json",
    log:
        f"{R}/logs/{{dataset}}/{{arch}}/{ROUNDS}/mst_paths.log",
    conda:
        ENV
    threads: 1
    resources:
        runtime=5,
        mem_mb=1000,
    script:
        "../workflow/scripts/mst_paths.py"


rule table_row:
    input:
        minima=minima_files,
        landscape=f"{R}/{{dataset}}/{{arch}}/{ROUNDS}/landscape.json",
        mst=f"{R}/{{dataset}}/{{arch}}/{ROUNDS}/mst_paths.json",
        overlap=f"{R}/{{dataset}}/{{arch}}/overlap/overlap.csv",
    output:
        row=f"{R}/{{dataset}}/{{arch}}/table_row.json",
        pairs=f"{R}/{{dataset}}/{{arch}}/pairs.csv",
    log:
        f"{R}/logs/{{dataset}}/{{arch}}/table_row.log",
    conda:
        ENV
    threads: 1
    resources:
        runtime=10,
        mem_mb=2000,
    params:
        row=row_settings("evaluation"),
        minima_hash=row_hash("minima"),
        config_hash=row_hash("evaluation"),
    script:
        "../workflow/scripts/table_row.py"


rule table_b1:
    input:
        rows=[f"{row_dir(d, a)}/table_row.json" for d, a in ROWS],
        pairs=[f"{row_dir(d, a)}/pairs.csv" for d, a in ROWS],
    output:
        csv=report(
            f"{R}/table_b1.csv",
            caption="../report/table_b1.rst",
            category="Table B.1",
        ),
        md=f"{R}/table_b1.md",
        tex=f"{R}/table_b1.tex",
        pairs=f"{R}/pairs.csv",
        fig5_png=report(
            f"{R}/figures/fig5_min_vs_saddle.png",
            caption="../report/fig5.rst",
            category="Figure 5",
        ),
        fig5_pdf=f"{R}/figures/fig5_min_vs_saddle.pdf",
    log:
        f"{R}/logs/table_b1.log",
    conda:
        ENV
    threads: 1
    resources:
        runtime=10,
        mem_mb=2000,
    params:
        expected_hashes=expected_table_hashes,
    script:
        "../workflow/scripts/table_b1.py"


rule row_figures:
    input:
        minima=minima_files,
        row=f"{R}/{{dataset}}/{{arch}}/table_row.json",
        landscape=f"{R}/{{dataset}}/{{arch}}/{ROUNDS}/landscape.json",
        mst=f"{R}/{{dataset}}/{{arch}}/{ROUNDS}/mst_paths.json",
    output:
        **{
            f"{name}_{ext}": (
                report(
                    f"{R}/figures/{{dataset}}/{{arch}}/{name}.{ext}",
                    caption=f"../report/{name}.rst",
                    category="Figures per architecture",
                    subcategory="{dataset} {arch}",
                    labels={
                        "figure": name,
                        "dataset": "{dataset}",
                        "architecture": "{arch}",
                    },
                )
                if ext == "png"
                else f"{R}/figures/{{dataset}}/{{arch}}/{name}.{ext}"
            )
            for name in ROW_FIGURES
            for ext in ("png", "pdf")
        },
    log:
        f"{R}/logs/{{dataset}}/{{arch}}/row_figures.log",
    conda:
        ENV
    threads: 1
    resources:
        runtime=20,
        mem_mb=4000,
    params:
        cycles=config["figures"]["cycles"],
        minima_hash=row_hash("minima"),
        path_hash=row_hash("paths"),
        config_hash=row_hash("evaluation"),
    script:
        "../workflow/scripts/row_figures.py"


rule slice_figure:
    input:
        dataset=f"{R}/data/{{dataset}}.json",
        landscape=f"{R}/{{dataset}}/{{arch}}/{ROUNDS}/landscape.json",
        mst=f"{R}/{{dataset}}/{{arch}}/{ROUNDS}/mst_paths.json",
    output:
        png=report(
            f"{R}/figures/{{dataset}}/{{arch}}/fig1_slice.png",
            caption="../report/fig1_slice.rst",
            category="Figures per architecture",
            subcategory="{dataset} {arch}",
            labels={
                "figure": "fig1_slice",
                "dataset": "{dataset}",
                "architecture": "{arch}",
            },
        ),
        pdf=f"{R}/figures/{{dataset}}/{{arch}}/fig1_slice.pdf",
    log:
        f"{R}/logs/{{dataset}}/{{arch}}/slice_figure.log",
    benchmark:
        f"{R}/benchmarks/{{dataset}}/{{arch}}/slice_figure.tsv"
    conda:
        ENV
    threads: config["threads"]["evaluate"]
    resources:
        runtime=runtime_minutes(120),
        mem_mb=16000,
        gpu=gpus,
    params:
        row=row_settings("evaluation"),
        resolution=config["figures"]["slice_resolution"],
        margin=config["figures"]["slice_margin"],
        path_hash=row_hash("paths"),
        config_hash=row_hash("evaluation"),
        data_dir=config["data_dir"],
        device=config["device"],
    script:
        "../workflow/scripts/slice_figure.py"
