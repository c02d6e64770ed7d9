# Essentially No Barriers in Neural Network Energy Landscape (Draxler et al., ICML 2018):
# minima -> misclassification overlap -> AutoNEB paths chosen by Algorithm 3 -> Table B.1, figures.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/minima.smk"
include: "rules/overlap.smk"
include: "rules/paths.smk"
include: "rules/evaluation.smk"
include: "rules/report.smk"


report: "report/workflow.rst"


rule all:
    default_target: True
    input:
        final_outputs(),
