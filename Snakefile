# Essentially No Barriers in Neural Network Energy Landscape (Draxler et al., ICML 2018):
# minima -> misclassification overlap -> AutoNEB paths chosen by Algorithm 3 -> Table B.1, figures.
from snakemake.utils import min_version

min_version("9.0")


# The embedded default (the digits demo) only when no --configfile is given: a user's own
# config starts from the schema's defaults, the paper's settings, never from the demo's. Found
# beside this file, so that `--snakefile .../Snakefile -d <elsewhere>` runs it too.
if not workflow.overwrite_configfiles:

    configfile: f"{workflow.basedir}/config/config.yaml"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/minima.smk"
include: "rules/overlap.smk"
include: "rules/exploration.smk"
include: "rules/paths.smk"
include: "rules/curves.smk"
include: "rules/evaluation.smk"
include: "rules/report.smk"


check_cluster()


onstart:
    if workflow.is_main_process:
        check_slurm_arrays()  # job arrays only where the SLURM plugin submits them right
        # one run per results directory, see nobarriers.core.results_lock
        hold_results_lock(RESULTS, adopt=config["results_dir_adopt"])


report: "report/workflow.rst"


rule all:
    default_target: True
    input:
        final_outputs(),
        stored_files,
