"""Figures of a row's landscape: the minimum spanning tree, the disconnectivity graph and the
misclassification-overlap heatmap of the minima."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np
from matplotlib.colors import Normalize
from matplotlib.patches import Rectangle

from ..core.errors import ConfigError
from ..engine.overlap import METRIC_LABELS, check_metric
from .style import new_figure as _figure
from .style import save_figure, source_note
from .style import styled as _styled

# --------------------------------------------------------------------------- MST


def _node_values(nodes: Sequence, node_loss) -> np.ndarray:
    if isinstance(node_loss, Mapping):
        return np.array([float(node_loss[n]) for n in nodes])
    values = np.asarray(node_loss, dtype=float)
    if len(values) != len(nodes):
        raise ValueError(f"node_loss has {len(values)} values for {len(nodes)} nodes")
    return values


@_styled
def plot_mst(
    nodes: Sequence,
    node_loss,
    edges: Sequence[tuple],
    png,
    pdf,
    title: str,
    *,
    config_hash: str | None = None,
):
    """The minimum spanning tree of the computed paths: nodes = minima (label = id, colour =
    training loss of the minimum), edges labelled with their saddle training loss.

    ``node_loss``: mapping node -> loss or a sequence aligned with ``nodes``; ``edges``:
    ``[(i, j, saddle)]``. Layout: networkx Kamada-Kawai on the saddle-weighted tree (deterministic;
    falls back to a seeded spring layout).
    """
    import networkx as nx

    nodes = list(nodes)
    values = _node_values(nodes, node_loss)
    g = nx.Graph()
    g.add_nodes_from(nodes)
    for i, j, w in edges:
        g.add_edge(i, j, saddle=float(w))
    try:
        pos = nx.kamada_kawai_layout(g)
    except Exception:  # scipy missing or a degenerate graph
        pos = nx.spring_layout(g, seed=0)
    fig = _figure(6.4, 5.4)
    ax = fig.subplots()
    saddles = np.array([float(w) for _, _, w in edges]) if edges else np.array([1.0])
    enorm = Normalize(saddles.min(), saddles.max() if saddles.max() > saddles.min() else None)
    ecmap = matplotlib.colormaps["Reds"]
    for i, j, w in edges:
        (x0, y0), (x1, y1) = pos[i], pos[j]
        ax.plot([x0, x1], [y0, y1], color=ecmap(0.35 + 0.65 * enorm(float(w))), lw=2.2, zorder=1)
        ax.text(
            (x0 + x1) / 2,
            (y0 + y1) / 2,
            f"{float(w):.4g}",
            fontsize=8,
            ha="center",
            va="center",
            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8},
            zorder=3,
        )
    xy = np.array([pos[n] for n in nodes])
    sc = ax.scatter(xy[:, 0], xy[:, 1], c=values, cmap="viridis", s=420, edgecolors="k", zorder=2)
    for (x, y), n in zip(xy, nodes, strict=True):
        ax.text(x, y, str(n), ha="center", va="center", fontsize=8, color="w", zorder=4)
    cbar = fig.colorbar(sc, ax=ax)
    cbar.set_label("training loss of the minimum (nats)")
    ax.set_title(title + "\nedge labels: saddle training loss (nats)", fontsize=11)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("layout (no metric meaning)")
    ax.margins(0.12)
    return save_figure(fig, png, pdf, source_note(config_hash))


# --------------------------------------------------------------------------- disconnectivity


def _merge_tree(nodes: Sequence, merges: Sequence) -> tuple[list, list]:
    """Normalise merges to ``[(child_a, child_b, height)]`` with scipy ids (leaves 0..n-1, k-th
    merge n+k). Accepted: scipy-style tuples ``(a, b, height[, size])``
    (``landscape.single_linkage``) or ``(members_a, members_b, height)`` with iterables of node
    labels."""
    n = len(nodes)
    index = {node: k for k, node in enumerate(nodes)}
    out, members = [], [frozenset([k]) for k in range(n)]
    owner = {frozenset([k]): k for k in range(n)}
    for m in merges:
        a, b, h = (m["a"], m["b"], m["height"]) if isinstance(m, Mapping) else tuple(m)[:3]
        ids = []
        for side in (a, b):
            if isinstance(side, frozenset | set | list | tuple):
                key = frozenset(index[x] for x in side)
                if key not in owner:
                    raise ValueError(f"merge {m!r}: {side!r} is not a current cluster")
                ids.append(owner[key])
            else:
                ids.append(int(side))
        for cid in ids:
            if cid < 0 or cid >= n + len(out):
                raise ValueError(f"merge {m!r}: unknown cluster id {cid}")
        merged = members[ids[0]] | members[ids[1]]
        members.append(merged)
        owner[merged] = n + len(out)
        out.append((ids[0], ids[1], float(h)))
    return out, members


@_styled
def plot_disconnectivity(
    nodes: Sequence,
    node_loss,
    merges: Sequence,
    png,
    pdf,
    title: str,
    *,
    log_y: bool = False,
    config_hash: str | None = None,
):
    """Disconnectivity graph from single-linkage merges over the ultrametric bounds.

    Vertical axis = training loss. Each minimum is a leaf line from its own loss up to the height
    at which its cluster first merges; each merge is a horizontal bar at the merge height (the
    saddle bound) joining its two children, which continue upwards from there. ``merges``: the
    output of ``landscape.single_linkage`` (``(a, b, height, size)``, scipy ids) or ``(members_a,
    members_b, height)``. Infinite heights (components without a computed path) are drawn at the
    top, marked "not connected". Leaves are ordered so that within each merge the child holding
    the lower minimum is on the left.
    """
    nodes = list(nodes)
    n = len(nodes)
    energy = _node_values(nodes, node_loss)
    tree, members = _merge_tree(nodes, merges)
    finite_h = [h for _, _, h in tree if math.isfinite(h)]
    top_finite = max([*finite_h, float(energy.max())])
    span = top_finite - float(energy.min()) or max(abs(top_finite), 1e-3)
    inf_h = top_finite + 0.15 * span if not log_y else top_finite * 1.5
    height = list(energy) + [h if math.isfinite(h) else inf_h for _, _, h in tree]
    low = [float(energy[list(m)].min()) for m in members]

    children = {n + k: (a, b) for k, (a, b, _) in enumerate(tree)}
    merged_ids = {c for ab in children.values() for c in ab}
    roots = [c for c in range(n + len(tree)) if c not in merged_ids]
    roots.sort(key=lambda c: low[c])

    order: list[int] = []

    def leaves(c):
        stack = [c]
        while stack:
            x = stack.pop()
            if x < n:
                order.append(x)
            else:
                a, b = sorted(children[x], key=lambda y: low[y])
                stack += [b, a]

    for r in roots:
        leaves(r)
    xpos = {leaf: k for k, leaf in enumerate(order)}

    def x_of(c):
        if c < n:
            return float(xpos[c])
        a, b = children[c]
        return (x_of(a) + x_of(b)) / 2

    fig = _figure(max(5.5, 0.45 * n + 2.5), 4.8)
    ax = fig.subplots()
    parent_h = {}
    for c, (a, b) in children.items():
        parent_h[a] = parent_h[b] = height[c]
    for c in range(n + len(tree)):
        top = parent_h.get(c, height[c])
        x = x_of(c)
        if c < n:
            ax.plot([x, x], [height[c], top], color="tab:blue", lw=1.6)
        elif c in parent_h:
            ax.plot([x, x], [height[c], top], color="k", lw=1.2)
        if c >= n:
            a, b = children[c]
            ax.plot([x_of(a), x_of(b)], [height[c], height[c]], color="k", lw=1.2)
    ax.scatter([xpos[k] for k in range(n)], energy, marker="_", s=160, color="tab:blue", zorder=3)
    if any(not math.isfinite(h) for _, _, h in tree):
        ax.axhline(inf_h, color="tab:red", ls=":", lw=1)
        ax.text(0, inf_h, " not connected", color="tab:red", va="bottom", fontsize=8)
    ax.set_xticks(range(n), [str(nodes[leaf]) for leaf in order])
    ax.set_xlabel("minimum (id)")
    ax.set_ylabel("training loss (nats)")
    if log_y:
        ax.set_yscale("log")
    ax.set_xlim(-0.7, n - 0.3)
    ax.grid(alpha=0.3, axis="y")
    ax.set_title(title)
    return save_figure(fig, png, pdf, source_note(config_hash))


# --------------------------------------------------------------------------- overlap


@_styled
def plot_overlap_heatmap(
    seeds: list,
    matrix: np.ndarray,
    png,
    pdf,
    title: str,
    *,
    threshold: float,
    metric: str = "smaller",
    config_hash: str | None = None,
):
    """Heatmap of the pairwise misclassification overlap of a row's minima (``metric``:
    ``smaller`` or ``jaccard``, named on the colour bar); off-diagonal cells above ``threshold``
    are boxed in red and the threshold is marked on the colour bar."""
    check_metric(metric, threshold)
    matrix = np.asarray(matrix, dtype=float)
    k = len(seeds)
    if matrix.shape != (k, k):
        raise ConfigError(f"{png}: overlap matrix {matrix.shape} does not fit {k} seeds")
    size = max(4.0, 0.45 * k + 2.5)
    fig = _figure(size + 1.0, size)
    ax = fig.subplots()
    im = ax.imshow(matrix, vmin=0.0, vmax=1.0, cmap="viridis")
    ax.set_xticks(range(k), [str(s) for s in seeds])
    ax.set_yticks(range(k), [str(s) for s in seeds])
    ax.set_xlabel("minimum (seed)")
    ax.set_ylabel("minimum (seed)")
    cbar = fig.colorbar(im, ax=ax)
    cbar.set_label(METRIC_LABELS[metric])
    cbar.ax.axhline(threshold, color="red", linewidth=1.5)
    flagged = False
    for i in range(k):
        for j in range(k):
            above = i != j and matrix[i, j] > threshold
            if above:
                ax.add_patch(
                    Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", lw=2.0)
                )
                flagged = True
            if k <= 12 or above:
                color = "white" if matrix[i, j] < 0.5 else "black"
                ax.text(
                    j,
                    i,
                    f"{matrix[i, j]:.2f}",
                    ha="center",
                    va="center",
                    color="red" if above else color,
                    fontsize=7,
                    fontweight="bold" if above else "normal",
                )
    note = f"red boxes: above {threshold:g}" if flagged else f"no pair above {threshold:g}"
    ax.set_title(f"{title}\n({note})", fontsize=11)
    return save_figure(fig, png, pdf, source_note(config_hash))
