localrules:
    overlap,


rule overlap:
    input:
        dataset=f"{RESULTS}/data/{{dataset}}.json",
        minima=minima_files,
    output:
        pairs=f"{RESULTS}/{{dataset}}/{{arch}}/overlap/overlap.csv",
        matrix=f"{RESULTS}/{{dataset}}/{{arch}}/overlap/overlap_matrix.csv",
        # the CSVs' SHA-256 (nobarriers.formats.csv_tables): outputs, so a missing one is rebuilt
        checksums=[
            f"{RESULTS}/{{dataset}}/{{arch}}/overlap/{name}.csv.sha256"
            for name in ("overlap", "overlap_matrix")
        ],
        png=report(
            f"{RESULTS}/{{dataset}}/{{arch}}/overlap/overlap.png",
            caption="../report/overlap.rst",
            category="Misclassification overlap",
            labels={"dataset": "{dataset}", "architecture": "{arch}"},
        ),
        pdf=f"{RESULTS}/{{dataset}}/{{arch}}/overlap/overlap.pdf",
    log:
        f"{RESULTS}/logs/{{dataset}}/{{arch}}/overlap.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=10,
        mem_mb=2000,
    params:
        row=row_settings("minima"),
        threshold=config["overlap"]["threshold"],
        metric=config["overlap"]["metric"],
    script:
        "../workflow/scripts/overlap.py"
