"""The figures' common style: fonts, colours, the source note, and writing PNG + PDF.

Figures are built with ``matplotlib.figure.Figure`` (no pyplot, no global backend state), so they
render with Agg whatever backend is configured. Each figure carries a source note
(``nobarriers <version>, config <hash>``) in its bottom right corner.
"""

from __future__ import annotations

import functools
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure

from ..core.atomic import atomic_path
from ..core.version import VERSION

STYLE = {
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "legend.fontsize": 9,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "figure.titlesize": 13,
    "pdf.fonttype": 42,  # embed TrueType: text stays selectable / editable
}
TRAIN_COLOR = "tab:orange"  # paper Figure 5: train orange, test blue
TEST_COLOR = "tab:blue"


def source_note(config_hash: str | None = None, extra: str | None = None) -> str:
    """``"nobarriers 0.1.0, config 1a2b3c4d5e6f"`` (+ ``extra``)."""
    note = f"nobarriers {VERSION}"
    if config_hash:
        note += f", config {config_hash}"
    if extra:
        note += f", {extra}"
    return note


DPI = 150  # PNG resolution (module-level so that tests can lower it)


def save_figure(fig: Figure, png, pdf, source_note: str | None = None, dpi: int | None = None):
    """Write ``fig`` to the paths ``png`` and ``pdf`` (the rule's outputs), with
    ``source_note`` in the bottom right corner; parent folders are created, each file is written
    atomically. Returns ``(png, pdf)``."""
    png, pdf = Path(png), Path(pdf)
    if source_note:
        strip = 13.0 / (72.0 * fig.get_figheight())  # ~13 pt at the bottom for the note
        engine = fig.get_layout_engine()
        if engine is not None and hasattr(engine, "set") and "rect" in engine.get():
            engine.set(rect=(0, strip, 1, 1 - strip))
        fig.text(0.995, 0.004, source_note, ha="right", va="bottom", fontsize=7, color="0.45")
    with matplotlib.rc_context(STYLE):
        with atomic_path(png) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi or DPI, metadata={"Software": None})
        with atomic_path(pdf) as tmp:
            fig.savefig(
                tmp,
                format="pdf",
                metadata={"Creator": source_note or "nobarriers", "CreationDate": None},
            )
    return png, pdf


def new_figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def styled(fn):
    """Run a plotting function under :data:`STYLE` (fonts are resolved when artists are made)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(STYLE):
            return fn(*args, **kwargs)

    return wrapper
