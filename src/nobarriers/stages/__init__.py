"""One function per workflow job, files in and files out, grouped like ``rules/``.

=====================  =========================  ============================================
module                 rules file                 jobs
=====================  =========================  ============================================
``data``               ``rules/data.smk``         prepare_dataset
``minima``             ``rules/minima.smk``       train_minimum
``overlap``            ``rules/overlap.smk``      overlap
``exploration``        ``rules/exploration.smk``  select_pairs, landscape (torch-free)
``paths``              ``rules/paths.smk``        autoneb_path
``evaluation``         ``rules/evaluation.smk``   evaluate_path, mst_paths, slice_figure
``report``             ``rules/report.smk``       table_row, table_b1, row_figures (torch-free)
=====================  =========================  ============================================

``common`` holds what they share (a row's minima and MST files, torch-free) and ``compute`` what
a compute job needs around its work (its runtime, the check of its endpoints). The scripts in
``workflow/scripts/`` unpack ``snakemake.*`` and call exactly one of these. Each
function checks what it reads (format markers, config hashes), so a result of another
configuration is refused instead of mixed in. A job's settings arrive as the row's stage settings
(:func:`nobarriers.settings.config.stage_settings`); its config hashes are computed from them.
"""
