# A small stand-in for the real workflow, used by tests/test_slurm.py to exercise the SLURM
# profile: two "minima" (GPU rules), one "path" between them (GPU rule) and a CPU "table".
# Copied into a temp dir by the test.
import os

SEEDS = [1, 2]
NAP = int(config.get("nap", 2))


rule all:
    input:
        "results/table.csv",


rule train_minimum:
    output:
        "results/minima/{seed}.txt",
    log:
        "logs/train/{seed}.log",
    threads: 1
    resources:
        runtime=lambda wc, attempt: 5 * attempt,
        mem_mb=200,
        gpu=1,
    shell:
        "(echo job=$SLURM_JOB_ID cvd=$CUDA_VISIBLE_DEVICES; sleep {NAP}; "
        "echo {wildcards.seed} > {output}) > {log} 2>&1"


rule autoneb_path:
    input:
        a="results/minima/1.txt",
        b="results/minima/2.txt",
    output:
        "results/paths/1-2.txt",
    log:
        "logs/path/1-2.log",
    threads: 1
    resources:
        runtime=lambda wc, attempt: 5 * attempt,
        mem_mb=200,
        gpu=1,
    shell:
        "(echo job=$SLURM_JOB_ID; sleep {NAP}; cat {input} > {output}) > {log} 2>&1"


rule table:
    input:
        "results/paths/1-2.txt",
    output:
        "results/table.csv",
    log:
        "logs/table.log",
    resources:
        runtime=5,
        mem_mb=200,
    shell:
        "(echo job=$SLURM_JOB_ID; cp {input} {output}) > {log} 2>&1"

