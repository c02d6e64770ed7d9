"""Reporting: Table B.1 (``table``), the per-pair table (``pairs``) and the figures
(``path_figures``, ``summary_figures``, ``landscape_figures``; shared style in ``style``).
Everything here works on plain Python / numpy data: the stages in :mod:`nobarriers.stages` read
the files and pass their numbers in."""
