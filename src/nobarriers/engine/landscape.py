"""Energy landscape exploration (paper Section 3.2, Algorithm 3), MST, ultrametric bounds.

Vocabulary. A *node* is a minimum id (an int, e.g. the training seed; any mutually comparable
hashable works). ``minimum_loss[node]`` is the training loss of that minimum.
``computed[(i, j)]`` is the saddle training loss (maximum loss along the path) of a computed path
between minima ``i`` and ``j``; keys are order-insensitive and normalised to ``(min, max)``. If a
pair is given in both orders the lower saddle is kept (both are valid paths; the lower one is the
better upper bound).

Ultrametric property (paper Section 3.2): concatenating computed paths gives a path whose saddle is
the maximum of the parts, so the best known upper bound on the true saddle between any two minima
is the *minimax* path value over the graph of computed paths, which equals the maximum edge on
their path through the minimum spanning tree (Gower & Ross 1969).

Algorithm 3 as the reference implementation runs it (see ``next_pairs``):

(b) while the graph of computed paths is disconnected, connect the global lowest-loss minimum to the
    lowest-loss minimum of every other component (from scratch this is the star of N-1 paths from
    the lowest-loss minimum, the paper's "connect theta_1 to all theta_i");
(c) once connected, visit the MST edges from the highest saddle downwards; removing an edge splits
    the tree into two clusters; propose the first cross pair that has no computed path yet; an edge
    without such a pair is skipped (the paper's "re-insert p_o and ignore it in the future").

The paper's "if L_new < L_old add p_new to the tree, else re-insert p_old" is exactly what
recomputing the MST from *all* computed paths at every round does: the new path enters the MST iff
it is lighter than the heaviest edge on the tree path between its endpoints (cycle property), so
no tree state has to be carried between rounds.

Stopping. Every pair (u, v) is a cross pair of every tree edge on the u-v tree path, so "no MST
edge can be bypassed" is equivalent to "every pair of minima has a computed path" -- exactly the
paper's loop condition "until one local MEP is known for each pair of minima". The other stop is the
budget (maximum number of computed paths).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence

import networkx as nx
import numpy as np
from networkx.utils import UnionFind

from ..core.errors import ConfigError

Node = Hashable
Pair = tuple
Edge = tuple  # (i, j, saddle) with i < j

__all__ = [
    "canonical_pair",
    "normalise_computed",
    "minimum_spanning_tree",
    "ultrametric_bounds",
    "single_linkage",
    "linkage_matrix",
    "next_pairs",
    "exploration_done",
]


def canonical_pair(i: Node, j: Node) -> tuple:
    """``(min(i, j), max(i, j))``; a pair of a minimum with itself is refused."""
    if i == j:
        raise ConfigError(f"a path needs two different minima, got the pair ({i!r}, {j!r})")
    return (i, j) if i < j else (j, i)


def normalise_computed(
    minimum_loss: Mapping[Node, float], computed: Mapping[tuple, float]
) -> dict[tuple, float]:
    """Check ``computed`` against ``minimum_loss`` and return it with ``(min, max)`` keys.

    Refuses (ConfigError naming the pair) a pair with an unknown minimum, a self pair or a NaN
    saddle. ``+inf`` saddles are allowed (the path exists but gives no finite bound).
    """
    for node, loss in minimum_loss.items():
        if loss is None or math.isnan(float(loss)):
            raise ConfigError(f"minimum {node!r} has no valid loss ({loss!r})")
    out: dict[tuple, float] = {}
    for key, saddle in computed.items():
        try:
            i, j = key
        except (TypeError, ValueError):
            raise ConfigError(f"computed path key {key!r} is not a pair of minima") from None
        pair = canonical_pair(i, j)
        for node in pair:
            if node not in minimum_loss:
                raise ConfigError(
                    f"computed path {key!r} refers to minimum {node!r}, which is not among the "
                    f"minima {sorted(minimum_loss)!r}"
                )
        value = float(saddle)
        if math.isnan(value):
            raise ConfigError(f"computed path {key!r} has a NaN saddle loss")
        out[pair] = min(value, out.get(pair, math.inf))
    return out


def _loss_key(minimum_loss: Mapping[Node, float]):
    """Sort key: lower minimum loss first, ties broken by the node id."""
    return lambda node: (float(minimum_loss[node]), node)


def _saddle_graph(nodes: Iterable[Node], edges: Mapping[tuple, float]) -> nx.Graph:
    """The graph of minima and computed paths (edge attribute ``saddle``).

    Nodes are added in sorted order, so networkx reports every edge as ``(min, max)``; its
    Kruskal sorts ``(saddle, u, v)``, which takes equal saddles by the lexicographically smaller
    pair -- the tie-breaking stated in :func:`minimum_spanning_tree`."""
    graph = nx.Graph()
    graph.add_nodes_from(sorted(nodes))
    for (i, j), saddle in sorted(edges.items()):
        graph.add_edge(i, j, saddle=saddle)
    return graph


def _kruskal(graph: nx.Graph) -> list[tuple]:
    """``[(i, j, saddle)]`` with ``i < j``, in the order Kruskal's algorithm accepts them."""
    tree = nx.minimum_spanning_edges(graph, algorithm="kruskal", weight="saddle", data=True)
    return [(min(i, j), max(i, j), d["saddle"]) for i, j, d in tree]


def minimum_spanning_tree(
    minimum_loss: Mapping[Node, float], computed: Mapping[tuple, float]
) -> list[tuple]:
    """Kruskal's minimum spanning tree (forest if disconnected) of the computed paths.

    Weight = saddle train loss. Returns ``[(i, j, saddle), ...]`` with ``i < j`` in the order the
    edges were accepted (increasing saddle). Ties are broken deterministically by the normalised
    pair ``(i, j)`` (lexicographically smaller pair first).
    """
    edges = normalise_computed(minimum_loss, computed)
    return _kruskal(_saddle_graph(minimum_loss, edges))


def _tree_graph(nodes: Iterable[Node], tree: Sequence[tuple]) -> nx.Graph:
    graph = nx.Graph()
    graph.add_nodes_from(nodes)
    graph.add_weighted_edges_from(tree, weight="saddle")
    return graph


def ultrametric_bounds(
    minimum_loss: Mapping[Node, float], computed: Mapping[tuple, float]
) -> tuple[list, np.ndarray]:
    """Upper bound on the true saddle loss of every pair of minima (ultrametric property).

    Returns ``(nodes, bounds)``: ``nodes`` sorted ids, ``bounds[a, b]`` (float64, symmetric) = the
    maximum saddle on the MST path between ``nodes[a]`` and ``nodes[b]`` = the minimax path value
    over all computed paths; ``inf`` if the two are not connected by computed paths. The diagonal
    holds the minimum's own training loss (the "path" from a minimum to itself is the point, whose
    highest loss is the minimum's loss) -- this is where a disconnectivity graph's leaves end.
    """
    nodes = sorted(minimum_loss)
    index = {n: k for k, n in enumerate(nodes)}
    tree = _tree_graph(nodes, minimum_spanning_tree(minimum_loss, computed))
    bounds = np.full((len(nodes), len(nodes)), np.inf)
    for src in nodes:
        row = bounds[index[src]]
        row[index[src]] = float(minimum_loss[src])
        highest = {src: -math.inf}  # the highest saddle on the tree path from src
        for parent, child in nx.bfs_edges(tree, src):
            highest[child] = max(highest[parent], tree.edges[parent, child]["saddle"])
            row[index[child]] = highest[child]
    return nodes, bounds


def single_linkage(nodes: Sequence[Node], bounds: np.ndarray) -> list[tuple]:
    """Single-linkage agglomeration of a symmetric dissimilarity matrix (e.g. the bounds).

    Returns ``n - 1`` merges ``(cluster_a, cluster_b, height, size)`` in scipy's linkage
    convention: leaves are the indices ``0..n-1`` into ``nodes``, the k-th merge creates cluster
    ``n + k``; ``cluster_a < cluster_b``; heights are non-decreasing. Pairs are merged in order of
    ``(height, a, b)`` (Kruskal on the complete graph), so ties are deterministic. Components that
    are not connected (``inf`` bound) are joined last at height ``inf``. The diagonal is ignored.
    For the ultrametric bounds, the merge heights are the saddles of the disconnectivity graph.
    """
    bounds = np.asarray(bounds, dtype=float)
    n = len(nodes)
    if bounds.shape != (n, n):
        raise ValueError(f"bounds must be [{n}, {n}] for {n} nodes, got {list(bounds.shape)}")
    if np.isnan(bounds).any():
        raise ValueError("bounds contain NaN")
    iu, ju = np.triu_indices(n, k=1)
    values = np.minimum(bounds[iu, ju], bounds[ju, iu])
    order = np.lexsort((ju, iu, values))
    sets = UnionFind(range(n))
    cluster_of_root = {k: k for k in range(n)}
    merges = []
    for k in order:
        a, b = int(iu[k]), int(ju[k])
        ra, rb = sets[a], sets[b]
        if ra == rb:
            continue
        ca, cb = cluster_of_root.pop(ra), cluster_of_root.pop(rb)
        sets.union(ra, rb)
        cluster_of_root[sets[a]] = n + len(merges)
        merges.append((min(ca, cb), max(ca, cb), float(values[k]), sets.weights[sets[a]]))
        if len(merges) == n - 1:
            break
    return merges


def linkage_matrix(
    nodes: Sequence[Node], bounds: np.ndarray, inf_height: float | None = None
) -> np.ndarray:
    """``single_linkage`` as a scipy linkage matrix ``Z`` (float64, shape ``[n-1, 4]``).

    scipy's dendrogram cannot draw infinite heights: pass ``inf_height`` to replace them (e.g. a
    bit above the highest finite bound).
    """
    merges = single_linkage(nodes, bounds)
    z = np.array(merges, dtype=float).reshape(-1, 4)
    if inf_height is not None:
        z[np.isinf(z[:, 2]), 2] = float(inf_height)
    return z


def next_pairs(
    minimum_loss: Mapping[Node, float],
    computed: Mapping[tuple, float],
    max_new: int | None = 1,
    budget: int | None = None,
    similar_rtol: float | None = None,
    similar_scale: str = "loss",
) -> list[tuple]:
    """The next pairs of minima to connect with AutoNEB (Algorithm 3 as the reference runs it).

    ``max_new`` caps the pairs proposed in one round (they run in parallel; ``None``: as many
    as the phase proposes -- the whole star, or one pair per MST edge); ``budget`` caps the
    total number of computed paths (``len(computed)`` + the proposals never exceeds it). Returns
    ``[]`` when exploration is done: every MST edge is bypassed (equivalently every pair has a
    computed path), the budget is spent, or -- with ``similar_rtol`` -- the tree holds only
    similar saddles (:func:`similar_saddles` on ``similar_scale``; the paper's early stop). Pairs
    are ``(min, max)`` tuples.

    * Disconnected graph (phase b): with ``g`` the global lowest-loss minimum, propose
      ``(g, lowest-loss minimum of C)`` for every component ``C`` not containing ``g``, components
      ordered by their lowest loss, up to ``max_new``. From scratch this is the star from ``g``.
      No MST-phase pairs are mixed into such a round.
    * Connected graph (phase c): MST edges are visited by decreasing saddle (ties: smaller pair
      first). Removing an edge splits the tree into clusters ``A`` (the side holding the lower-loss
      best minimum) and ``B``. With ``a_0, a_1, ...`` and ``b_0, b_1, ...`` each cluster sorted by
      minimum loss (ties by id), cross pairs are tried in **lexicographic order of (rank in A,
      rank in B)**: ``(a_0,b_0), (a_0,b_1), ..., (a_0,b_last), (a_1,b_0), ...`` -- the reference's
      nested loop. The first pair neither computed nor already proposed this round is proposed for
      that edge; an edge with none is skipped. At most one pair per edge, up to ``max_new`` edges.
    """
    if max_new is not None and int(max_new) < 1:
        raise ConfigError(f"max_new must be at least 1, got {max_new!r}")
    edges = normalise_computed(minimum_loss, computed)
    limit = len(minimum_loss) ** 2 if max_new is None else int(max_new)
    if budget is not None:
        limit = min(limit, int(budget) - len(edges))
        if limit <= 0:
            return []
    nodes = sorted(minimum_loss)
    if len(nodes) < 2:
        return []
    key = _loss_key(minimum_loss)

    graph = _saddle_graph(nodes, edges)
    components = [sorted(c) for c in nx.connected_components(graph)]
    if len(components) > 1:
        best = min(nodes, key=key)
        others = sorted(
            (min(c, key=key) for c in components if best not in c),
            key=key,
        )
        return [canonical_pair(best, m) for m in others[:limit]]

    tree = _kruskal(graph)
    if similar_rtol is not None and similar_saddles(
        tree, similar_rtol, minimum_loss, similar_scale
    ):
        return []
    forest = _tree_graph(nodes, tree)
    proposed: list[tuple] = []
    taken: set[tuple] = set()
    for i, j, w in sorted(tree, key=lambda e: (-e[2], e[0], e[1])):
        forest.remove_edge(i, j)
        side = nx.node_connected_component(forest, i)  # i's cluster once (i, j) is removed
        forest.add_edge(i, j, saddle=w)
        other = [n for n in nodes if n not in side]
        cluster_a, cluster_b = sorted(side, key=key), sorted(other, key=key)
        if key(cluster_b[0]) < key(cluster_a[0]):
            cluster_a, cluster_b = cluster_b, cluster_a
        pair = _first_open_pair(cluster_a, cluster_b, edges, taken)
        if pair is not None:
            proposed.append(pair)
            taken.add(pair)
            if len(proposed) == limit:
                break
    return proposed


def _first_open_pair(cluster_a, cluster_b, edges, taken) -> tuple | None:
    for a in cluster_a:
        for b in cluster_b:
            pair = canonical_pair(a, b)
            if pair not in edges and pair not in taken:
                return pair
    return None


def similar_saddles(
    tree: Sequence[tuple],
    rtol: float,
    minimum_loss: Mapping[Node, float] | None = None,
    scale: str = "loss",
) -> bool:
    """Whether the saddles of a spanning tree ``[(i, j, saddle)]`` are all similar: the lowest
    within ``rtol`` (relative) of the highest, ``max - min <= rtol * max`` -- of the saddle
    losses themselves (``scale="loss"``), or of the barriers above each edge's higher minimum,
    ``max(saddle - max(loss_i, loss_j), 0)`` (``scale="barrier"``, needs ``minimum_loss``).

    The paper stops Algorithm 3 "when the lightened spanning tree found so far contains only
    similar saddle point energies" (Sec. 3.3) without a number. The criterion is a heuristic, not
    a bound: a bypass found later can lower an edge down to its endpoints' loss, so the saddles
    an early stop reports can be higher than the full exploration's by more than ``rtol``
    (measured in the README). On the loss scale the criterion loosens as the saddles approach
    the minima: where Sadd/Min is 1.2, barriers differing by 2x still count as similar; the
    barrier scale compares what the paper's trend is about. A tree of one edge is similar to
    itself."""
    if scale == "barrier":
        if minimum_loss is None:
            raise ConfigError("similar_saddles(scale='barrier') needs the minima's losses")
        values = [
            max(float(s) - max(float(minimum_loss[i]), float(minimum_loss[j])), 0.0)
            for i, j, s in tree
        ]
    elif scale == "loss":
        values = [float(s) for _, _, s in tree]
    else:
        raise ConfigError(f"similar_saddles: scale {scale!r} is not 'loss' or 'barrier'")
    if not values:
        return False
    high, low = max(values), min(values)
    return high - low <= float(rtol) * abs(high)


def exploration_done(
    minimum_loss: Mapping[Node, float],
    computed: Mapping[tuple, float],
    budget: int | None = None,
    similar_rtol: float | None = None,
    similar_scale: str = "loss",
) -> bool:
    """True when ``next_pairs`` has nothing left to propose (all bypassed, budget spent, or a
    tree of similar saddles)."""
    return not next_pairs(
        minimum_loss,
        computed,
        max_new=1,
        budget=budget,
        similar_rtol=similar_rtol,
        similar_scale=similar_scale,
    )


def sample_off_tree(nodes: Sequence[Node], tree_pairs: Iterable[tuple], size: int, seed: int = 0):
    """A seeded random sample of ``size`` pairs of ``nodes`` that are not edges of the tree
    (sorted pairs, in sorted order): the pairs a comparison on the MST alone would never see,
    since Algorithm 3 keeps the pairs with the lowest saddles."""
    on_tree = {canonical_pair(a, b) for a, b in tree_pairs}
    nodes = sorted(nodes)
    off = [(a, b) for k, a in enumerate(nodes) for b in nodes[k + 1 :] if (a, b) not in on_tree]
    if size > len(off):
        raise ConfigError(f"a sample of {size} pairs off the tree asked for; there are {len(off)}")
    rng = np.random.default_rng(seed)
    return sorted(off[i] for i in rng.choice(len(off), size=size, replace=False))
