"""A pivot-batched kernel for MLPs: all pivots of a NEB step as one matrix product per layer."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..nn.runtime import full_precision

# Modules that act elementwise (or, in eval mode, not at all) on a batch of activations, so that
# they apply unchanged to the pivot-batched activations [N, B, F] of a linear chain.
_ELEMENTWISE = (
    nn.ReLU,
    nn.LeakyReLU,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    nn.Tanh,
    nn.Sigmoid,
    nn.Softplus,
    nn.Identity,
    nn.Dropout,
)


class LinearChain:
    """Pivot-batched kernel for networks that are a chain of ``Flatten``, ``Linear`` and
    elementwise activation modules (the MLPs), checked by ``torch.fx`` tracing.

    All pivots run as ONE batched matrix product per layer (``bmm`` on ``[N, B, F]``
    activations; the first layer, whose input all pivots share, as one ``[B, N*F]`` GEMM), and
    one backward pass gives every pivot's gradient. It computes the same function as
    ``vmap(functional_call)`` without functorch's per-operation dispatch, which dominates small
    networks on a CPU (``benchmarks/bench_neb_step.py``: 64-32-10 at N = 16, 1.8x faster than
    vmap, 3x faster than the loop). Dropout counts as identity: the NEB copy is in eval mode.
    """

    def __init__(self, layers: list, names: list[str], numels: list[int]):
        self.layers = layers  # ("flatten", (start, end)) | ("linear", module, w, b) | ("act", m)
        self.names, self.numels = names, numels

    @classmethod
    def of(cls, net: nn.Module, names: list[str], numels: list[int]) -> LinearChain | None:
        """The chain of ``net`` if it is one (in eval mode), else ``None``."""
        try:
            graph = torch.fx.symbolic_trace(net).graph
        except Exception:  # data-dependent control flow etc.: not a plain chain
            return None
        index = {name: i for i, name in enumerate(names)}
        layers, previous = [], None
        for node in graph.nodes:
            if node.op == "placeholder":
                if previous is not None:
                    return None
            elif node.op == "call_module" and node.args == (previous,) and not node.kwargs:
                module = net.get_submodule(node.target)
                if isinstance(module, nn.Linear):
                    w = index.get(f"{node.target}.weight")
                    b = index.get(f"{node.target}.bias")
                    layers.append(("linear", module, w, b))
                elif isinstance(module, nn.Flatten) and module.start_dim >= 1:
                    layers.append(("flatten", (module.start_dim, module.end_dim)))
                elif isinstance(module, _ELEMENTWISE):
                    layers.append(("act", module))
                else:
                    return None
            elif node.op == "output":
                if node.args != (previous,):
                    return None
            else:
                return None
            previous = node
        if not any(layer[0] == "linear" for layer in layers):
            return None
        return cls(layers, names, numels)

    def forward(self, points: Tensor, x: Tensor) -> Tensor:
        """Logits ``[N, B, C]`` of the ``N`` points on the shared inputs ``x`` ``[B, ...]``."""
        n = points.shape[0]
        chunks = points.split(self.numels, dim=1)
        h, batched = x, False  # activations are shared by all pivots until the first Linear
        for layer in self.layers:
            if layer[0] == "flatten":
                start, end = layer[1]  # start >= 1: the sample dimension is never flattened
                h = h.flatten(start + batched, end + batched if end >= 0 else end)
            elif layer[0] == "act":
                h = layer[1](h)
            else:
                _, module, w, b = layer
                weight = (
                    chunks[w].view(n, *module.weight.shape)
                    if w is not None
                    else module.weight.expand(n, -1, -1)
                )
                if batched:
                    h = torch.bmm(h, weight.transpose(1, 2))
                else:  # one GEMM for all pivots: [B, F] x [F, N*out]
                    out = weight.shape[1]
                    h = (h @ weight.reshape(n * out, -1).T).view(h.shape[0], n, out)
                    h = h.transpose(0, 1)
                    batched = True
                if b is not None:
                    h = h + chunks[b].view(n, 1, -1)
                elif module.bias is not None:
                    h = h + module.bias
        return h

    def losses(self, points: Tensor, x: Tensor, y: Tensor) -> Tensor:
        """Mean cross-entropy of each point ``[N]``."""
        logits = self.forward(points, x)
        n, batch = logits.shape[:2]
        per_sample = F.cross_entropy(
            full_precision(logits).reshape(n * batch, -1), y.repeat(n), reduction="none"
        )
        return per_sample.view(n, batch).mean(1)
