localrules:
    table_row,
    table_b1,
    row_figures,
    ensemble_figure,
    alignment_figure,
    families,
    repeats_figure,


rule table_row:
    input:
        minima=minima_files,
        landscape=f"{RESULTS}/{{dataset}}/{{arch}}/{ROUNDS}/landscape.json",
        mst=f"{RESULTS}/{{dataset}}/{{arch}}/{ROUNDS}/mst_paths.json",
        overlap=f"{RESULTS}/{{dataset}}/{{arch}}/overlap/overlap.csv",
        independent=independent_ensembles,
    output:
        row=f"{RESULTS}/{{dataset}}/{{arch}}/table_row.json",
        pairs=f"{RESULTS}/{{dataset}}/{{arch}}/pairs.csv",
        pairs_checksum=f"{RESULTS}/{{dataset}}/{{arch}}/pairs.csv.sha256",
    log:
        f"{RESULTS}/logs/{{dataset}}/{{arch}}/table_row.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=10,
        mem_mb=2000,
    params:
        row=row_settings("report"),
    script:
        "../workflow/scripts/table_row.py"


rule table_b1:
    input:
        rows=[f"{row_dir(d, a)}/table_row.json" for d, a in ROWS],
        pairs=[f"{row_dir(d, a)}/pairs.csv" for d, a in ROWS],
    output:
        csv=report(
            f"{RESULTS}/table_b1.csv",
            caption="../report/table_b1.rst",
            category="Table B.1",
        ),
        md=f"{RESULTS}/table_b1.md",
        tex=f"{RESULTS}/table_b1.tex",
        pairs=f"{RESULTS}/pairs.csv",
        checksums=[f"{RESULTS}/{name}.csv.sha256" for name in ("table_b1", "pairs")],
        fig5_png=report(
            f"{RESULTS}/figures/fig5_min_vs_saddle.png",
            caption="../report/fig5.rst",
            category="Figure 5",
        ),
        fig5_pdf=f"{RESULTS}/figures/fig5_min_vs_saddle.pdf",
        trends_png=report(
            f"{RESULTS}/figures/trends.png",
            caption="../report/trends.rst",
            category="Figure 5",
        ),
        trends_pdf=f"{RESULTS}/figures/trends.pdf",
    log:
        f"{RESULTS}/logs/table_b1.log",
    conda:
        CONDA_ENV
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
        row=f"{RESULTS}/{{dataset}}/{{arch}}/table_row.json",
        landscape=f"{RESULTS}/{{dataset}}/{{arch}}/{ROUNDS}/landscape.json",
        mst=f"{RESULTS}/{{dataset}}/{{arch}}/{ROUNDS}/mst_paths.json",
    output:
        fig4_png=report(
            f"{RESULTS}/figures/{{dataset}}/{{arch}}/fig4_path_cycles.png",
            caption="../report/fig4_path_cycles.rst",
            category="Figures per architecture",
            subcategory="{dataset} {arch}",
            labels={
                "figure": "fig4_path_cycles",
                "dataset": "{dataset}",
                "architecture": "{arch}",
            },
        ),
        fig4_pdf=f"{RESULTS}/figures/{{dataset}}/{{arch}}/fig4_path_cycles.pdf",
        fig6_png=report(
            f"{RESULTS}/figures/{{dataset}}/{{arch}}/fig6_learning_curves.png",
            caption="../report/fig6_learning_curves.rst",
            category="Figures per architecture",
            subcategory="{dataset} {arch}",
            labels={
                "figure": "fig6_learning_curves",
                "dataset": "{dataset}",
                "architecture": "{arch}",
            },
        ),
        fig6_pdf=f"{RESULTS}/figures/{{dataset}}/{{arch}}/fig6_learning_curves.pdf",
        fig7_png=report(
            f"{RESULTS}/figures/{{dataset}}/{{arch}}/fig7_parallel_coordinates.png",
            caption="../report/fig7_parallel_coordinates.rst",
            category="Figures per architecture",
            subcategory="{dataset} {arch}",
            labels={
                "figure": "fig7_parallel_coordinates",
                "dataset": "{dataset}",
                "architecture": "{arch}",
            },
        ),
        fig7_pdf=f"{RESULTS}/figures/{{dataset}}/{{arch}}/fig7_parallel_coordinates.pdf",
        mst_png=report(
            f"{RESULTS}/figures/{{dataset}}/{{arch}}/mst.png",
            caption="../report/mst.rst",
            category="Figures per architecture",
            subcategory="{dataset} {arch}",
            labels={
                "figure": "mst",
                "dataset": "{dataset}",
                "architecture": "{arch}",
            },
        ),
        mst_pdf=f"{RESULTS}/figures/{{dataset}}/{{arch}}/mst.pdf",
        disconnectivity_png=report(
            f"{RESULTS}/figures/{{dataset}}/{{arch}}/disconnectivity.png",
            caption="../report/disconnectivity.rst",
            category="Figures per architecture",
            subcategory="{dataset} {arch}",
            labels={
                "figure": "disconnectivity",
                "dataset": "{dataset}",
                "architecture": "{arch}",
            },
        ),
        disconnectivity_pdf=f"{RESULTS}/figures/{{dataset}}/{{arch}}/disconnectivity.pdf",
    log:
        f"{RESULTS}/logs/{{dataset}}/{{arch}}/row_figures.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=20,
        mem_mb=4000,
    params:
        row=row_settings("evaluation"),
        cycles=config["figures"]["cycles"],
    script:
        "../workflow/scripts/row_figures.py"


# Only requested when evaluation.ensemble_sizes is set (see row_outputs).
rule ensemble_figure:
    input:
        mst=f"{RESULTS}/{{dataset}}/{{arch}}/{ROUNDS}/mst_paths.json",
    output:
        png=report(
            f"{RESULTS}/figures/{{dataset}}/{{arch}}/ensembles.png",
            caption="../report/ensembles.rst",
            category="Figures per architecture",
            subcategory="{dataset} {arch}",
            labels={
                "figure": "ensembles",
                "dataset": "{dataset}",
                "architecture": "{arch}",
            },
        ),
        pdf=f"{RESULTS}/figures/{{dataset}}/{{arch}}/ensembles.pdf",
    log:
        f"{RESULTS}/logs/{{dataset}}/{{arch}}/ensemble_figure.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=10,
        mem_mb=2000,
    params:
        row=row_settings("evaluation"),
    script:
        "../workflow/scripts/ensemble_figure.py"


# Only requested when a row's alignment is weight_matching (see row_outputs).
rule alignment_figure:
    input:
        mst=f"{RESULTS}/{{dataset}}/{{arch}}/{ROUNDS}/mst_paths.json",
    output:
        png=report(
            f"{RESULTS}/figures/{{dataset}}/{{arch}}/alignment.png",
            caption="../report/alignment.rst",
            category="Figures per architecture",
            subcategory="{dataset} {arch}",
            labels={
                "figure": "alignment",
                "dataset": "{dataset}",
                "architecture": "{arch}",
            },
        ),
        pdf=f"{RESULTS}/figures/{{dataset}}/{{arch}}/alignment.pdf",
    log:
        f"{RESULTS}/logs/{{dataset}}/{{arch}}/alignment_figure.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=10,
        mem_mb=2000,
    params:
        row=row_settings("report"),
    script:
        "../workflow/scripts/alignment_figure.py"


# Only requested when curves.families is set (see row_outputs): every compared pair's
# connections side by side.
rule families:
    input:
        minima=minima_files,
        landscape=f"{RESULTS}/{{dataset}}/{{arch}}/{ROUNDS}/landscape.json",
        mst=f"{RESULTS}/{{dataset}}/{{arch}}/{ROUNDS}/mst_paths.json",
    output:
        csv=f"{RESULTS}/{{dataset}}/{{arch}}/families.csv",
        csv_checksum=f"{RESULTS}/{{dataset}}/{{arch}}/families.csv.sha256",
        png=report(
            f"{RESULTS}/figures/{{dataset}}/{{arch}}/families.png",
            caption="../report/families.rst",
            category="Figures per architecture",
            subcategory="{dataset} {arch}",
            labels={
                "figure": "families",
                "dataset": "{dataset}",
                "architecture": "{arch}",
            },
        ),
        pdf=f"{RESULTS}/figures/{{dataset}}/{{arch}}/families.pdf",
    log:
        f"{RESULTS}/logs/{{dataset}}/{{arch}}/families.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=10,
        mem_mb=2000,
    params:
        row=row_settings("report"),
        timings=family_timings,
    script:
        "../workflow/scripts/families.py"


# Only requested when comparisons.autoneb_repeats > 1 (see row_outputs).
rule repeats_figure:
    input:
        minima=minima_files,
        landscape=f"{RESULTS}/{{dataset}}/{{arch}}/{ROUNDS}/landscape.json",
        mst=f"{RESULTS}/{{dataset}}/{{arch}}/{ROUNDS}/mst_paths.json",
    output:
        png=report(
            f"{RESULTS}/figures/{{dataset}}/{{arch}}/repeats.png",
            caption="../report/repeats.rst",
            category="Figures per architecture",
            subcategory="{dataset} {arch}",
            labels={
                "figure": "repeats",
                "dataset": "{dataset}",
                "architecture": "{arch}",
            },
        ),
        pdf=f"{RESULTS}/figures/{{dataset}}/{{arch}}/repeats.pdf",
    log:
        f"{RESULTS}/logs/{{dataset}}/{{arch}}/repeats_figure.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=10,
        mem_mb=2000,
    params:
        row=row_settings("report"),
    script:
        "../workflow/scripts/repeats_figure.py"
