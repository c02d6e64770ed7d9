localrules:
    overlap,


rule overlap:
    input:
        dataset=f"{R}/data/{{dataset}}.json",
        minima=minima_files,
    output:
        pairs=f"{R}/{{dataset}}/{{arch}}/overlap/overlap.csv",
        matrix=f"{R}/{{dataset}}/{{arch}}/overlap/overlap_matrix.csv",
        png=report(
            f"{R}/{{dataset}}/{{arch}}/overlap/overlap.png",
            caption="../report/overlap.rst",
            category="Misclassification overlap",
            labels={"dataset": "{dataset}", "architecture": "{arch}"},
        ),
        pdf=f"{R}/{{dataset}}/{{arch}}/overlap/overlap.pdf",
    log:
        f"{R}/logs/{{dataset}}/{{arch}}/overlap.log",
    conda:
        ENV
    threads: 1
    resources:
        runtime=10,
        mem_mb=2000,
    params:
        threshold=config["overlap"]["threshold"],
        metric=config["overlap"]["metric"],
        data_dir=config["data_dir"],
        config_hash=row_hash("minima"),
    script:
        "../workflow/scripts/overlap.py"
