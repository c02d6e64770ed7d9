"""Algorithm 3, MST, ultrametric bounds and single linkage against brute force."""

from __future__ import annotations

import itertools
import math

import networkx as nx
import numpy as np
import pytest
from scipy.cluster.hierarchy import cophenet, linkage
from scipy.spatial.distance import squareform

from nobarriers.core.errors import ConfigError
from nobarriers.engine.landscape import (
    exploration_done,
    linkage_matrix,
    minimum_spanning_tree,
    next_pairs,
    similar_saddles,
    single_linkage,
    ultrametric_bounds,
)

# --------------------------------------------------------------------------- helpers


def random_instance(rng, n, density=None, ties=False):
    """Minima ids are shuffled, non-contiguous ints (like seeds); saddles >= both minima."""
    ids = sorted(rng.choice(1000, size=n, replace=False).tolist())
    loss = {i: float(rng.uniform(0.0, 1.0)) for i in ids}
    pairs = list(itertools.combinations(ids, 2))
    if density is None:
        density = rng.uniform(0.2, 1.0)
    computed = {}
    for i, j in pairs:
        if rng.uniform() < density:
            s = float(rng.uniform(1.0, 2.0))
            if ties:
                s = round(s, 1)
            key = (i, j) if rng.uniform() < 0.5 else (j, i)  # order-insensitive keys
            computed[key] = s
    return loss, computed


def floyd_minimax(nodes, computed):
    """Brute force: minimax path value over the computed edges (inf if unreachable)."""
    idx = {n: k for k, n in enumerate(nodes)}
    d = np.full((len(nodes), len(nodes)), np.inf)
    for (i, j), s in computed.items():
        a, b = idx[i], idx[j]
        d[a, b] = d[b, a] = min(d[a, b], s)
    for k in range(len(nodes)):
        d = np.minimum(d, np.maximum(d[:, [k]], d[[k], :]))
    return d


def prim_total(nodes, computed):
    """Brute-force minimum spanning forest weight via networkx."""
    g = nx.Graph()
    g.add_nodes_from(nodes)
    for (i, j), s in computed.items():
        g.add_edge(i, j, weight=s)
    forest = nx.minimum_spanning_tree(g, algorithm="prim")
    return sum(d["weight"] for _, _, d in forest.edges(data=True)), nx.number_connected_components(
        g
    )


def canon(computed):
    return {(min(i, j), max(i, j)): s for (i, j), s in computed.items()}


def cross_pairs(tree, nodes, edge):
    g = nx.Graph()
    g.add_nodes_from(nodes)
    g.add_edges_from((i, j) for i, j, _ in tree if {i, j} != {edge[0], edge[1]})
    side = nx.node_connected_component(g, edge[0])
    other = [n for n in nodes if n not in side]
    return [(min(a, b), max(a, b)) for a in side for b in other]


def bypassable_edges(loss, computed, tree):
    nodes = sorted(loss)
    done = canon(computed)
    return [e for e in tree if any(p not in done for p in cross_pairs(tree, nodes, e))]


def reference_pick(loss, computed):
    """Independent re-statement of the reference's choice (one pair, distinct weights)."""
    nodes = sorted(loss)
    done = canon(computed)
    g = nx.Graph()
    g.add_nodes_from(nodes)
    for (i, j), s in done.items():
        g.add_edge(i, j, weight=s)
    comps = list(nx.connected_components(g))
    val = lambda n: loss[n]  # noqa: E731
    if len(comps) > 1:
        best = min(nodes, key=val)
        other = min((min(c, key=val) for c in comps if best not in c), key=val)
        return (min(best, other), max(best, other))
    mst = nx.minimum_spanning_tree(g)
    for e in sorted(mst.edges, key=lambda e: g.edges[e]["weight"], reverse=True):
        mst.remove_edge(*e)
        c1, c2 = nx.connected_components(mst)
        if min(c1 | c2, key=val) in c2:
            c1, c2 = c2, c1  # A = the cluster with the lower best loss
        for a in sorted(c1, key=val):
            for b in sorted(c2, key=val):
                if (min(a, b), max(a, b)) not in done:
                    return (min(a, b), max(a, b))
        mst.add_edge(*e)
    return None


def explore(loss, hidden, max_new, budget=None, check=None):
    computed = {}
    rounds = []
    while True:
        pairs = next_pairs(loss, computed, max_new, budget=budget)
        if check is not None:
            check(computed, pairs)
        if not pairs:
            return computed, rounds
        assert len(pairs) <= max_new
        assert len(set(pairs)) == len(pairs)
        for p in pairs:
            assert p[0] < p[1] and p not in computed
            computed[p] = hidden[p]
        rounds.append(pairs)


def hidden_graph(rng, n):
    ids = sorted(rng.choice(1000, size=n, replace=False).tolist())
    loss = {i: float(rng.uniform(0, 1)) for i in ids}
    hidden = {p: float(rng.uniform(1, 2)) for p in itertools.combinations(ids, 2)}
    return loss, hidden


# --------------------------------------------------------------------------- MST / bounds


def test_mst_weight_matches_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(1, 10))
        loss, computed = random_instance(rng, n, ties=bool(rng.integers(2)))
        tree = minimum_spanning_tree(loss, computed)
        total, n_comp = prim_total(sorted(loss), canon(computed))
        assert math.isclose(sum(s for _, _, s in tree), total, abs_tol=1e-12)
        assert len(tree) == n - n_comp
        assert all(i < j for i, j, _ in tree)


def test_mst_deterministic_under_key_order_and_ties():
    rng = np.random.default_rng(1)
    for _ in range(50):
        loss, computed = random_instance(rng, 7, ties=True)
        items = list(computed.items())
        rng.shuffle(items)
        flipped = {(j, i): s for (i, j), s in items}
        assert minimum_spanning_tree(loss, computed) == minimum_spanning_tree(loss, flipped)


def test_duplicate_keys_keep_lower_saddle():
    loss = {1: 0.1, 2: 0.2}
    assert minimum_spanning_tree(loss, {(1, 2): 3.0, (2, 1): 2.0}) == [(1, 2, 2.0)]


def test_ultrametric_bounds_equal_minimax_brute_force():
    rng = np.random.default_rng(2)
    for _ in range(300):
        n = int(rng.integers(1, 10))
        loss, computed = random_instance(rng, n, ties=bool(rng.integers(2)))
        nodes, bounds = ultrametric_bounds(loss, computed)
        assert nodes == sorted(loss)
        brute = floyd_minimax(nodes, canon(computed))
        off = ~np.eye(n, dtype=bool)
        np.testing.assert_array_equal(bounds[off], brute[off])
        np.testing.assert_array_equal(np.diag(bounds), [loss[k] for k in nodes])
        np.testing.assert_array_equal(bounds, bounds.T)
        # ultrametric inequality on the connected part
        for a, b, c in itertools.permutations(range(n), 3):
            assert bounds[a, c] <= max(bounds[a, b], bounds[b, c])


# --------------------------------------------------------------------------- single linkage


def test_single_linkage_matches_scipy():
    rng = np.random.default_rng(3)
    for _ in range(200):
        n = int(rng.integers(2, 10))
        loss, computed = random_instance(rng, n, density=1.0, ties=bool(rng.integers(2)))
        nodes, bounds = ultrametric_bounds(loss, computed)
        merges = single_linkage(nodes, bounds)
        z = linkage_matrix(nodes, bounds)
        assert len(merges) == n - 1 and z.shape == (n - 1, 4)
        dist = bounds.copy()
        np.fill_diagonal(dist, 0.0)
        zs = linkage(squareform(dist, checks=False), method="single")
        np.testing.assert_allclose(z[:, 2], zs[:, 2])  # merge heights
        np.testing.assert_array_equal(z[:, 3], [m[3] for m in merges])
        assert z[-1, 3] == n
        # a single linkage of an ultrametric reproduces it exactly (cophenetic distances)
        np.testing.assert_allclose(cophenet(z), squareform(dist, checks=False))
        np.testing.assert_allclose(cophenet(z), cophenet(zs))
        assert all(a < b < n + k for k, (a, b, _, _) in enumerate(merges))


def test_single_linkage_arbitrary_matrix_and_disconnected():
    rng = np.random.default_rng(4)
    for _ in range(100):
        n = int(rng.integers(2, 9))
        d = rng.uniform(size=(n, n))
        d = (d + d.T) / 2
        np.fill_diagonal(d, 0)
        z = linkage_matrix(list(range(n)), d)
        zs = linkage(squareform(d, checks=False), method="single")
        np.testing.assert_allclose(z[:, 2], zs[:, 2])
        np.testing.assert_allclose(cophenet(z), cophenet(zs))
    loss = {1: 0.1, 2: 0.2, 3: 0.3, 4: 0.4}
    nodes, bounds = ultrametric_bounds(loss, {(1, 2): 1.5, (3, 4): 1.2})
    merges = single_linkage(nodes, bounds)
    assert [m[2] for m in merges] == [1.2, 1.5, math.inf]
    assert merges[-1][:2] == (4, 5) and merges[-1][3] == 4
    z = linkage_matrix(nodes, bounds, inf_height=2.0)
    assert z[-1, 2] == 2.0


# --------------------------------------------------------------------------- Algorithm 3


def test_star_phase_first_with_max_new_1():
    rng = np.random.default_rng(5)
    for _ in range(40):
        n = int(rng.integers(2, 9))
        loss, hidden = hidden_graph(rng, n)
        best = min(loss, key=loss.get)
        computed, rounds = explore(loss, hidden, max_new=1)
        order = [r[0] for r in rounds]
        star = order[: n - 1]
        assert all(best in p for p in star)
        # star ordered by the loss of the other minimum
        others = [p[0] if p[1] == best else p[1] for p in star]
        assert others == sorted(others, key=loss.get)


def test_exploration_matches_reference_and_stops_exactly():
    rng = np.random.default_rng(6)
    for _ in range(40):
        n = int(rng.integers(2, 8))
        loss, hidden = hidden_graph(rng, n)

        def check(computed, pairs, loss=loss, n=n):
            if pairs:
                assert pairs[0] == reference_pick(loss, computed)
            tree = minimum_spanning_tree(loss, computed)
            connected = len(tree) == n - 1
            if connected:
                # non-empty proposal <=> some MST edge still has an uncomputed cross pair
                assert bool(pairs) == bool(bypassable_edges(loss, computed, tree))
            else:
                assert pairs

        computed, _ = explore(loss, hidden, max_new=1, check=check)
        assert len(computed) == n * (n - 1) // 2
        assert exploration_done(loss, computed)
        true_tree = minimum_spanning_tree(loss, hidden)
        assert minimum_spanning_tree(loss, computed) == true_tree
        assert sorted(true_tree) == sorted(
            (min(i, j), max(i, j), d["weight"])
            for i, j, d in nx.minimum_spanning_tree(
                nx.Graph([(i, j, {"weight": s}) for (i, j), s in hidden.items()])
            ).edges(data=True)
        )


def test_exploration_parallel_rounds_max_new_4():
    rng = np.random.default_rng(7)
    for _ in range(40):
        n = int(rng.integers(2, 10))
        loss, hidden = hidden_graph(rng, n)
        best = min(loss, key=loss.get)

        def check(computed, pairs, loss=loss, n=n, best=best):
            tree = minimum_spanning_tree(loss, computed)
            if len(tree) < n - 1:
                assert pairs and all(best in p for p in pairs)
                assert len(pairs) == min(4, n - 1 - len(tree))
            else:
                bypass = bypassable_edges(loss, computed, tree)
                assert bool(pairs) == bool(bypass)
                # one proposal per bypassable edge, up to 4
                assert len(pairs) <= min(4, len(bypass))
                if len(pairs) < min(4, len(bypass)):
                    # fewer only if some edge's open pairs were all taken by this round's picks
                    assert any(
                        {p for p in cross_pairs(tree, sorted(loss), e) if p not in computed}
                        <= set(pairs)
                        for e in bypass
                    )

        computed, rounds = explore(loss, hidden, max_new=4, check=check)
        n_star = math.ceil((n - 1) / 4)
        assert all(best in p for r in rounds[:n_star] for p in r)
        assert len(computed) == n * (n - 1) // 2
        assert minimum_spanning_tree(loss, computed) == minimum_spanning_tree(loss, hidden)


@pytest.mark.parametrize("max_new", [1, 4])
def test_budget_truncation(max_new):
    rng = np.random.default_rng(8)
    for _ in range(30):
        n = int(rng.integers(2, 9))
        loss, hidden = hidden_graph(rng, n)
        budget = int(rng.integers(0, n * (n - 1) // 2 + 3))
        computed, rounds = explore(loss, hidden, max_new=max_new, budget=budget)
        assert len(computed) == min(budget, n * (n - 1) // 2)
        assert exploration_done(loss, computed, budget=budget)
        # the truncated run is a prefix of the unlimited one
        full, _ = explore(loss, hidden, max_new=max_new)
        assert list(computed) == list(full)[: len(computed)]


def test_cross_pair_order_is_lexicographic_by_rank():
    # chain 1-2-3-4 by loss; connected tree 1-2 (0.5), 2-3 (0.9), 3-4 (0.6)
    loss = {1: 0.1, 2: 0.2, 3: 0.3, 4: 0.4}
    computed = {(1, 2): 0.5, (1, 3): 0.9, (3, 4): 0.6}
    # highest edge (1,3): A = {1,2}, B = {3,4}; (1,3) done -> (1,4)
    assert next_pairs(loss, computed, 1) == [(1, 4)]
    # round of 3: (1,4) for edge (1,3); edge (3,4): A={1,2,3}, B={4}, (1,4) taken -> (2,4);
    # edge (1,2): A={1,3,4}, B={2}: (1,2) done -> (3,2)
    assert next_pairs(loss, computed, 3) == [(1, 4), (2, 4), (2, 3)]
    # A is the side with the lower best minimum even when the edge is listed the other way
    loss2 = {1: 0.4, 2: 0.3, 3: 0.2, 4: 0.1}
    assert next_pairs(loss2, {(1, 2): 0.5, (2, 3): 0.9, (3, 4): 0.6}, 1) == [(2, 4)]


def test_input_validation():
    loss = {1: 0.1, 2: 0.2}
    with pytest.raises(ConfigError, match="minimum 3"):
        next_pairs(loss, {(1, 3): 1.0}, 1)
    with pytest.raises(ConfigError, match="NaN"):
        minimum_spanning_tree(loss, {(1, 2): float("nan")})
    with pytest.raises(ConfigError, match="two different"):
        minimum_spanning_tree(loss, {(1, 1): 1.0})
    with pytest.raises(ConfigError, match="max_new"):
        next_pairs(loss, {}, 0)
    assert next_pairs({1: 0.0}, {}, 3) == []
    assert next_pairs(loss, {}, 3) == [(1, 2)]
    assert next_pairs(loss, {(1, 2): 1.0}, 3) == []


def test_the_early_stop_on_the_loss_and_on_the_barrier_scale():
    """The issue's example: minima at 0.54, barriers of 0.045 and 0.09 above them. On the loss
    scale the saddles (0.585, 0.63) lie within 10 % and the loop would stop after the star; the
    barriers differ by 2x, so on the barrier scale it goes on."""
    loss = {0: 0.54, 1: 0.54, 2: 0.54}
    tree = [(0, 1, 0.585), (0, 2, 0.63)]
    assert similar_saddles(tree, 0.1, loss, "loss")
    assert not similar_saddles(tree, 0.1, loss, "barrier")
    assert similar_saddles(tree, 0.6, loss, "barrier")  # (0.09 - 0.045) / 0.09 = 0.5
    # a saddle below its higher endpoint (noise) is a barrier of 0, not a negative one
    assert similar_saddles([(0, 1, 0.53), (0, 2, 0.54)], 0.0, loss, "barrier")
    star = {(0, 1): 0.585, (0, 2): 0.63}
    assert next_pairs(loss, star, None, similar_rtol=0.1) == []
    assert next_pairs(loss, star, None, similar_rtol=0.1, similar_scale="barrier") == [(1, 2)]
    assert next_pairs(loss, star, None, similar_rtol=None) == [(1, 2)]
    with pytest.raises(ConfigError, match="needs the minima's losses"):
        similar_saddles(tree, 0.1, None, "barrier")


def test_without_a_cap_a_round_holds_the_whole_star_then_one_bypass_per_edge():
    loss = {k: 0.1 * k for k in range(10)}
    assert next_pairs(loss, {}, None) == [(0, k) for k in range(1, 10)]
    star = {(0, k): 1.0 + 0.01 * k for k in range(1, 10)}
    bypasses = next_pairs(loss, star, None)
    # one per MST edge, highest saddle first, each the first open cross pair: (1, 9) ... (1, 2);
    # the lowest edge (0, 1) finds its cross pairs (1, k) all taken by then and is skipped
    assert bypasses == [(1, k) for k in range(9, 1, -1)]
    assert next_pairs(loss, star, None, budget=12) == bypasses[:3]
