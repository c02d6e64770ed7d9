"""One function per workflow job, files in and files out, grouped like ``rules/``.

=====================  =========================  ============================================
module                 rules file                 jobs
=====================  =========================  ============================================
``data``               ``rules/data.smk``         prepare_dataset
``minima``             ``rules/minima.smk``       train_minimum
``overlap``            ``rules/overlap.smk``      overlap
``paths``              ``rules/paths.smk``        select_pairs, autoneb_path, landscape
``evaluation``         ``rules/evaluation.smk``   evaluate_path, mst_paths
``report``             ``rules/report.smk``       table_row, table_b1, row_figures, slice_figure
=====================  =========================  ============================================

The scripts in ``workflow/scripts/`` unpack ``snakemake.*`` and call exactly one of these. Each
function checks what it reads (format markers, config hashes), so a result of another
configuration is refused instead of mixed in. A job's settings arrive as the row's stage settings
(:func:`nobarriers.config.stage_settings`); its config hashes are computed from them.
"""
