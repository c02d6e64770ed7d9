"""Permutation alignment by weight matching (Ainsworth et al., "Git Re-Basin", ICLR 2023, Sec. 3.2).

Hidden units can be permuted without changing the function a network computes. Before connecting
two minima, B is permuted so that its weights are as close as possible to A's.

**Permutation spec.** :func:`permutation_spec` traces the model with ``torch.fx`` and propagates,
for every value, how its channel dimension (dim 1) is made of *permutation groups*: a Conv/Linear
output starts a new group, BN / activations / pooling pass it through, a residual ``add`` unifies
both operands (union-find; a group is split where the operands' segment boundaries differ, which
is how an option-A padded stream becomes "previous stream + padded channels"), ``cat(dim=1)``
concatenates, flattening [B, C, H, W] to [B, C*H*W] repeats every channel H*W times, and the
model's input and output are fixed. Anything else raises :class:`AlignmentError`.

The result, :class:`PermutationSpec`, holds ``groups`` (name -> size) and ``axes``: for every
state_dict key, one entry per tensor axis, either ``None`` (axis not permuted) or a tuple of
:class:`Segment` ``(group, size, repeat)`` that tile the axis in order. A segment covers
``size * repeat`` consecutive indices; index ``c * repeat + s`` belongs to channel ``c`` of
``group`` (``group=None``: fixed indices, ``repeat=1``). A permutation ``perm`` of a group means
``new[c] = old[perm[c]]``.

**Objective.** Weight matching maximises ``sum_k <W_a[k], P(W_b[k])>`` over the *parameters*
(weights, biases, BN scale/shift) as in the paper. BN running statistics are buffers: they are
permuted with their channels but do not enter the objective -- they are activation statistics,
not weights, and the L2 distance the path methods see is over parameters only.
"""

from __future__ import annotations

import copy
import math
import operator
from dataclasses import dataclass

import numpy as np
import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from ..core.errors import AlignmentError
from ..models.layers import ImageInput

__all__ = [
    "AlignmentResult",
    "PermutationSpec",
    "Segment",
    "align",
    "apply_permutation",
    "check_same_function",
    "permutation_spec",
    "weight_matching",
]


@dataclass(frozen=True)
class Segment:
    group: str | None  # None: indices that are not permuted
    size: int  # channels in the segment
    repeat: int = 1  # consecutive indices per channel (flattened spatial positions)


Axis = tuple[Segment, ...] | None


@dataclass(frozen=True)
class PermutationSpec:
    groups: dict[str, int]  # group name -> size
    axes: dict[str, tuple[Axis, ...]]  # state_dict key -> per-axis segments (None: fixed)
    parameters: tuple[str, ...]  # keys of nn.Parameters: the matching objective and distance


@dataclass(frozen=True)
class AlignmentResult:
    state: dict[str, torch.Tensor]  # B permuted to match A
    perms: dict[str, torch.Tensor]
    distance_before: float
    distance_after: float
    sweeps: int
    max_output_diff: float


# ---------------------------------------------------------------------------------------------
# Groups: union-find whose roots may be split into consecutive sub-groups.

Struct = list[tuple[int, int]]  # a value's channel structure: (group id, repeat) in order


class _Groups:
    def __init__(self) -> None:
        self.size: list[int] = []
        self.label: list[str] = []
        self.parent: list[int] = []
        self.children: dict[int, list[int]] = {}  # a split root -> its consecutive parts
        self.fixed: set[int] = set()  # roots that must not be permuted

    def new(self, size: int, label: str, fixed: bool = False) -> int:
        g = len(self.size)
        if label in self.label:  # e.g. a module called twice: keep names unique
            label = f"{label}#{self.label.count(label) + 1}"
        self.size.append(size)
        self.label.append(label)
        self.parent.append(g)
        if fixed:
            self.fixed.add(g)
        return g

    def find(self, g: int) -> int:
        while self.parent[g] != g:
            self.parent[g] = g = self.parent[self.parent[g]]
        return g

    def expand(self, struct: Struct) -> Struct:
        """The structure in terms of current unsplit roots."""
        out: Struct = []
        for g, rep in struct:
            r = self.find(g)
            out += (
                self.expand([(c, rep) for c in self.children[r]])
                if r in self.children
                else [(r, rep)]
            )
        return out

    def split(self, r: int, at: int) -> None:
        n, name = self.size[r], self.label[r]
        self.children[r] = [
            self.new(at, f"{name}[0:{at}]", r in self.fixed),
            self.new(n - at, f"{name}[{at}:{n}]", r in self.fixed),
        ]

    def unify(self, a: Struct, b: Struct, what: str) -> None:
        """Make two structures carry the same permutation, splitting groups at boundaries."""
        while True:
            ea, eb = self.expand(a), self.expand(b)
            la, lb = (sum(self.size[g] * rep for g, rep in e) for e in (ea, eb))
            if la != lb:
                raise AlignmentError(f"cannot align: {what} combines {la} and {lb} channels")
            cuts = set(_offsets(self, ea)) | set(_offsets(self, eb))
            if not self._split_at(ea, cuts, what) and not self._split_at(eb, cuts, what):
                break
        for (ga, ra), (gb, rb) in zip(ea, eb, strict=True):
            if ra != rb or self.size[ga] != self.size[gb]:
                raise AlignmentError(
                    f"cannot align: {what} combines groups of different sizes "
                    f"({self.size[ga]}x{ra} and {self.size[gb]}x{rb})"
                )
            ra_, rb_ = sorted((self.find(ga), self.find(gb)))
            if ra_ != rb_:  # the older group stays root, so names follow the first creator
                self.parent[rb_] = ra_
                if rb_ in self.fixed:
                    self.fixed.add(ra_)

    def _split_at(self, e: Struct, cuts: set[int], what: str) -> bool:
        for (g, rep), start in zip(e, _offsets(self, e), strict=False):
            end = start + self.size[g] * rep
            for cut in sorted(c for c in cuts if start < c < end):
                if (cut - start) % rep:
                    raise AlignmentError(f"cannot align: {what} splits a flattened channel")
                self.split(g, (cut - start) // rep)
                return True
        return False


def _offsets(groups: _Groups, e: Struct) -> list[int]:
    """Start index of every segment, plus the end."""
    return [0, *np.cumsum([groups.size[g] * rep for g, rep in e]).tolist()]


# ---------------------------------------------------------------------------------------------
# Tracing

_PASS_MODULES = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid,
    nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d,
    nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d,
)  # fmt: skip
_PASS_FUNCTIONS = {
    F.relu, torch.relu, F.relu6, F.leaky_relu, F.elu, F.gelu, F.silu, torch.tanh, torch.sigmoid,
    F.dropout, F.max_pool1d, F.max_pool2d, F.avg_pool1d, F.avg_pool2d,
    F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_max_pool1d, F.adaptive_max_pool2d,
}  # fmt: skip
_PASS_METHODS = {"relu", "relu_", "sigmoid", "tanh", "contiguous", "clone"}
# Elementwise between two tensors: both must carry the same permutation.
_BINARY = {operator.add, operator.iadd, torch.add, operator.sub, operator.mul, torch.mul}
_BINARY_METHODS = {"add", "add_", "sub", "mul"}
_RESHAPES = {torch.flatten, torch.reshape}
_RESHAPE_METHODS = {"flatten", "view", "reshape"}


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        # ImageInput branches on the input's rank, which fx cannot trace; it only reshapes the
        # (never permuted) model input, so it is handled as one operation.
        return isinstance(m, ImageInput) or super().is_leaf_module(m, qualname)


def _owner(node: fx.Node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    return list(stack)[-1] if stack else ""


def _where(node: fx.Node) -> str:
    name = getattr(node.target, "__name__", str(node.target))
    owner = _owner(node)
    return f"{node.op} '{name}' in " + (f"module '{owner}'" if owner else "the top-level forward")


def permutation_spec(model: nn.Module, example_input: torch.Tensor) -> PermutationSpec:
    """Derive the permutation groups of ``model`` by tracing it on ``example_input``'s shape."""
    model = copy.deepcopy(model).eval()  # shape propagation must not touch BN statistics
    try:
        gm = fx.GraphModule(model, _Tracer().trace(model))
        with torch.no_grad():
            ShapeProp(gm).propagate(example_input)
    except Exception as exc:
        raise AlignmentError(
            f"cannot align {type(model).__name__}: torch.fx cannot trace it ({exc})"
        ) from exc
    builder = _Builder()
    for node in gm.graph.nodes:
        builder.visit(node, gm)
    missing = [k for k in model.state_dict() if k not in builder.bound]
    if missing:
        raise AlignmentError(f"cannot align: tensors used by no supported operation: {missing}")
    return _finish(builder.groups, builder.bound, tuple(k for k, _ in model.named_parameters()))


class _Builder:
    """Propagates channel structures through the graph, one node at a time."""

    def __init__(self) -> None:
        self.groups = _Groups()
        self.bound: dict[str, list[Struct | None]] = {}  # state key -> per-axis structure
        self.struct: dict[fx.Node, Struct] = {}
        self.scalars: set[fx.Node] = set()  # shape queries such as x.size(0): not tensors

    def shape(self, node: fx.Node) -> tuple[int, ...]:
        meta = node.meta.get("tensor_meta")
        if not hasattr(meta, "shape"):
            raise AlignmentError(f"cannot align: {_where(node)} does not produce a tensor")
        return tuple(meta.shape)

    def fixed(self, n: int) -> Struct:
        return [(self.groups.new(n, "fixed", fixed=True), 1)]

    def of(self, arg: object, node: fx.Node) -> Struct:
        if not isinstance(arg, fx.Node) or arg not in self.struct:
            raise AlignmentError(f"cannot align: {_where(node)} has an unsupported input {arg!r}")
        return self.struct[arg]

    def length(self, s: Struct) -> int:
        return sum(self.groups.size[g] * rep for g, rep in self.groups.expand(s))

    def bind(self, prefix: str, module: nn.Module, axes: dict[str, list[Struct | None]]) -> None:
        """Record the axes of the module's own tensors; a module called twice must agree."""
        own = [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]
        for name, t in own:
            new = axes.get(name, [None] * t.dim())  # e.g. BN's num_batches_tracked: a scalar
            for old_ax, new_ax in zip(
                self.bound.setdefault(f"{prefix}.{name}", new), new, strict=True
            ):
                if old_ax is not new_ax:
                    a = old_ax if old_ax is not None else self.fixed(self.length(new_ax))
                    b = new_ax if new_ax is not None else self.fixed(self.length(old_ax))
                    self.groups.unify(a, b, f"module '{prefix}' called twice")

    def visit(self, node: fx.Node, gm: fx.GraphModule) -> None:
        if node.op == "placeholder":
            self.struct[node] = self.fixed(self.shape(node)[1])  # input features stay in place
        elif node.op == "output":
            out = node.args[0]
            self.groups.unify(self.of(out, node), self.fixed(self.shape(out)[1]), "model output")
        elif node.op == "call_module":
            self.struct[node] = self.module(node, gm.get_submodule(node.target))
        elif node.op in ("call_function", "call_method"):
            query = node.target in ("size", "dim") or (
                node.target is getattr and node.args[1] in ("shape", "ndim")
            )
            inputs = node.all_input_nodes
            if "tensor_meta" not in node.meta and (query or all(a in self.scalars for a in inputs)):
                self.scalars.add(node)  # e.g. x.view(x.size(0), -1)
            else:
                self.struct[node] = self.function(node)
        else:  # get_attr: a parameter used directly in forward
            raise AlignmentError(f"cannot align: {_where(node)} reads a tensor attribute")

    def module(self, node: fx.Node, module: nn.Module) -> Struct:
        name, kind = node.target, type(module).__name__
        x = self.of(node.args[0], node)
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            if isinstance(module, nn.Linear) and len(self.shape(node.args[0])) != 2:
                raise AlignmentError(f"cannot align: module '{name}' (Linear) on a non-2-D input")
            if getattr(module, "groups", 1) != 1:
                raise AlignmentError(f"cannot align: module '{name}' ({kind}) is grouped")
            out = [(self.groups.new(self.shape(node)[1], name), 1)]
            kernel = [None] * (module.weight.dim() - 2)
            self.bind(name, module, {"weight": [out, x, *kernel], "bias": [out]})
            return out
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            stats = ("weight", "bias", "running_mean", "running_var")
            self.bind(name, module, {s: [x] for s in stats})
            return x
        if isinstance(module, _PASS_MODULES):
            self.bind(name, module, {})
            return x
        if isinstance(module, nn.Flatten):
            return self.reshape(node, x)
        if isinstance(module, ImageInput):
            self.groups.unify(x, self.fixed(self.shape(node.args[0])[1]), f"module '{name}'")
            return self.fixed(self.shape(node)[1])
        raise AlignmentError(
            f"cannot align: module '{name}' ({kind}) is not supported by weight matching"
        )

    def function(self, node: fx.Node) -> Struct:
        f, args, kw = node.target, node.args, node.kwargs
        method = node.op == "call_method"
        tensors = [a for a in node.all_input_nodes if a not in self.scalars]
        if f in (_BINARY_METHODS if method else _BINARY) and len(tensors) in (1, 2):
            # Elementwise: with a number it passes through, with a tensor both must agree.
            self.groups.unify(self.of(tensors[0], node), self.of(tensors[-1], node), _where(node))
            return self.of(tensors[0], node)
        if f is torch.cat and not method:
            parts = [self.of(a, node) for a in args[0]]
            dim = args[1] if len(args) > 1 else kw.get("dim", 0)
            if dim % len(self.shape(node)) == 1:
                return [seg for p in parts for seg in p]  # DenseNet: segments side by side
            for p in parts[1:]:
                self.groups.unify(parts[0], p, _where(node))
            return parts[0]
        if len(tensors) != 1 or tensors[0] is not args[0]:  # all below take exactly one tensor
            raise AlignmentError(f"cannot align: {_where(node)} is not supported")
        x = self.of(args[0], node)
        if f in (_PASS_METHODS if method else _PASS_FUNCTIONS):
            return x
        if f in (_RESHAPE_METHODS if method else _RESHAPES):
            return self.reshape(node, x)
        if f is operator.getitem and not method:
            index = args[1] if isinstance(args[1], tuple) else (args[1],)
            if all(isinstance(i, slice) for i in index) and index[1:2] in ((), (slice(None),)):
                return x  # spatial slicing, e.g. option A's x[:, :, ::2, ::2]
        if f is F.pad and not method:
            return self.pad(node, x)
        raise AlignmentError(f"cannot align: {_where(node)} is not supported")

    def pad(self, node: fx.Node, x: Struct) -> Struct:
        args, kw = node.args, node.kwargs
        pad = args[1] if len(args) > 1 else kw["pad"]
        mode = args[2] if len(args) > 2 else kw.get("mode", "constant")
        j = len(self.shape(args[0])) - 2  # F.pad lists (before, after) pairs from the last dim
        before, after = (pad[2 * j], pad[2 * j + 1]) if len(pad) > 2 * j else (0, 0)
        if (before or after) and mode != "constant":
            raise AlignmentError(f"cannot align: {_where(node)} pads channels in mode {mode!r}")
        # Constant padded channels are interchangeable with each other: a new free group each.
        label = f"{_owner(node) or node.name}.pad"
        new = [
            [(self.groups.new(n, label + side), 1)] if n else []
            for n, side in ((before, "_before"), (after, ""))
        ]
        return new[0] + x + new[1]

    def reshape(self, node: fx.Node, x: Struct) -> Struct:
        src, dst = self.shape(node.args[0]), self.shape(node)
        if len(dst) >= 2 and src[:2] == dst[:2]:
            return x  # only the dims after the channel dim change
        if len(dst) == 2 and src[0] == dst[0] and dst[1] == math.prod(src[1:]):
            spatial = math.prod(src[2:])  # [B, C, H, W] -> [B, C*H*W]: feature c*S + s
            return [(g, rep * spatial) for g, rep in x]
        raise AlignmentError(f"cannot align: {_where(node)} reshapes {src} to {dst}")


def _finish(groups: _Groups, bound: dict, parameters: tuple[str, ...]) -> PermutationSpec:
    names: dict[int, str] = {}

    def axis(s: Struct | None) -> Axis:
        if s is None:
            return None
        segs: list[Segment] = []
        for g, rep in groups.expand(s):
            if g in groups.fixed:  # consecutive fixed indices form one segment
                n = groups.size[g] * rep
                if segs and segs[-1].group is None:
                    n += segs.pop().size
                segs.append(Segment(None, n))
            else:
                names.setdefault(g, groups.label[g])
                segs.append(Segment(names[g], groups.size[g], rep))
        return None if all(sg.group is None for sg in segs) else tuple(segs)

    axes = {k: tuple(axis(s) for s in v) for k, v in bound.items()}
    return PermutationSpec({names[g]: groups.size[g] for g in sorted(names)}, axes, parameters)


# ---------------------------------------------------------------------------------------------
# Matching and applying permutations


def _index(axis: tuple[Segment, ...], perms: dict[str, torch.Tensor]) -> torch.Tensor:
    parts, offset = [], 0
    for seg in axis:
        if seg.group is None:
            idx = torch.arange(seg.size)
        else:
            p = perms[seg.group].to(torch.long)
            idx = (p[:, None] * seg.repeat + torch.arange(seg.repeat)).reshape(-1)
        parts.append(idx + offset)
        offset += seg.size * seg.repeat
    return torch.cat(parts)


def _permute(t: torch.Tensor, axes: tuple[Axis, ...], perms, skip: int | None = None):
    for ax, segs in enumerate(axes):
        if segs is not None and ax != skip:
            t = t.index_select(ax, _index(segs, perms).to(t.device))
    return t


def _check_state(spec: PermutationSpec, state: dict[str, torch.Tensor], what: str) -> None:
    if set(state) != set(spec.axes):
        diff = sorted(set(state) ^ set(spec.axes))
        raise AlignmentError(f"{what}: keys do not match the permutation spec: {diff[:5]}")
    for key, axes in spec.axes.items():
        want = [None if a is None else sum(s.size * s.repeat for s in a) for a in axes]
        got = list(state[key].shape)
        if len(got) != len(want) or any(w not in (None, g) for w, g in zip(want, got, strict=True)):
            raise AlignmentError(f"{what}: {key!r} has shape {tuple(got)}, spec expects {want}")


def weight_matching(
    spec: PermutationSpec,
    state_a: dict[str, torch.Tensor],
    state_b: dict[str, torch.Tensor],
    max_iter: int = 100,
    seed: int = 0,
) -> tuple[dict[str, torch.Tensor], int]:
    """Permutations to apply to B so that it matches A, and the number of sweeps done.

    Coordinate descent (Git Re-Basin, Algorithm 1): each step solves one linear assignment for a
    group with every other group held at its current permutation; groups are visited in a random
    order (seeded) and it stops after a sweep that improved nothing, or after ``max_iter`` sweeps.
    """
    # imported here: scipy.optimize costs every path job 0.35 s to import, and only aligned
    # paths use it
    from scipy.optimize import linear_sum_assignment

    _check_state(spec, state_a, "state A")
    _check_state(spec, state_b, "state B")
    a = {k: state_a[k].detach().double().cpu() for k in spec.parameters}
    b = {k: state_b[k].detach().double().cpu() for k in spec.parameters}
    # Where each group occurs: (key, axis, offset, repeat).
    where: dict[str, list[tuple[str, int, int, int]]] = {g: [] for g in spec.groups}
    for key in spec.parameters:
        for ax, segs in enumerate(spec.axes[key]):
            offset = 0
            for seg in segs or ():
                if seg.group is not None:
                    where[seg.group].append((key, ax, offset, seg.repeat))
                offset += seg.size * seg.repeat
    perms = {g: torch.arange(n) for g, n in spec.groups.items()}
    rng = np.random.default_rng(seed)
    names = list(spec.groups)
    sweeps, improved = 0, True
    while improved and sweeps < max_iter:
        sweeps += 1
        improved = False
        for i in rng.permutation(len(names)):
            g, n = names[i], spec.groups[names[i]]
            cost = torch.zeros(n, n, dtype=torch.float64)
            for key, ax, off, rep in where[g]:
                # Other axes use the current permutations (also g's own, should it occur on
                # two axes of one tensor: then the step is the paper's linearisation).
                wb = _permute(b[key], spec.axes[key], perms, skip=ax)
                wa_g = a[key].narrow(ax, off, n * rep).movedim(ax, 0).reshape(n, -1)
                wb_g = wb.narrow(ax, off, n * rep).movedim(ax, 0).reshape(n, -1)
                cost += wa_g @ wb_g.T  # cost[i, j] = <A's unit i, B's unit j>
            rows, cols = linear_sum_assignment(cost.numpy(), maximize=True)
            old = cost[torch.arange(n), perms[g]].sum().item()
            new = cost[rows, cols].sum().item()
            if new > old + 1e-12 * max(1.0, abs(old)):
                perms[g] = torch.from_numpy(cols).long()
                improved = True
    return perms, sweeps


def apply_permutation(
    spec: PermutationSpec, perms: dict[str, torch.Tensor], state: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """A new state_dict with every tensor (buffers included) permuted along its axes."""
    _check_state(spec, state, "state")
    for g, n in spec.groups.items():
        p = perms.get(g)
        if p is None or not torch.equal(torch.sort(p.cpu().long()).values, torch.arange(n)):
            raise AlignmentError(f"group {g!r}: expected a permutation of {n} elements, got {p}")
    return {k: _permute(v, spec.axes[k], perms).clone() for k, v in state.items()}


def _outputs(model: nn.Module, state: dict[str, torch.Tensor], inputs: torch.Tensor):
    m = copy.deepcopy(model)
    try:
        m.load_state_dict(state)
    except RuntimeError as exc:
        raise AlignmentError(f"state does not fit the model: {exc}") from exc
    with torch.no_grad():
        return m.eval()(inputs)


def check_same_function(
    model: nn.Module,
    state: dict[str, torch.Tensor],
    aligned_state: dict[str, torch.Tensor],
    inputs: torch.Tensor,
    rtol: float = 1e-4,
    atol: float = 1e-5,
) -> float:
    """Max |output difference| of two states on ``inputs`` (eval mode); raises if they differ."""
    ref, out = _outputs(model, state, inputs), _outputs(model, aligned_state, inputs)
    if ref.shape != out.shape:
        raise AlignmentError(f"aligned model output shape {tuple(out.shape)} != {tuple(ref.shape)}")
    diff = (out - ref).abs()
    allowed = atol + rtol * ref.abs()
    worst = int(torch.argmax(torch.nan_to_num(diff - allowed, nan=math.inf)))
    if not bool((diff <= allowed).all()):
        raise AlignmentError(
            "permuted model computes a different function: |difference| "
            f"{diff.flatten()[worst].item():.3g} exceeds the tolerance atol + rtol*|output| = "
            f"{atol:g} + {rtol:g}*{ref.abs().flatten()[worst].item():.3g} (max difference "
            f"{diff.max().item():.3g}); the permutation spec is wrong for this model"
        )
    return diff.max().item()


def _distance(spec: PermutationSpec, a: dict, b: dict) -> float:
    return math.sqrt(
        sum(((a[k].double() - b[k].double()) ** 2).sum().item() for k in spec.parameters)
    )


def align(
    model: nn.Module,
    state_a: dict[str, torch.Tensor],
    state_b: dict[str, torch.Tensor],
    inputs: torch.Tensor,
    seed: int = 0,
    max_iter: int = 100,
) -> AlignmentResult:
    """Permute B to match A by weight matching, and verify it still computes B's function."""
    spec = permutation_spec(model, inputs)
    perms, sweeps = weight_matching(spec, state_a, state_b, max_iter=max_iter, seed=seed)
    aligned = apply_permutation(spec, perms, state_b)
    diff = check_same_function(model, state_b, aligned, inputs)  # a wrong spec must fail here
    return AlignmentResult(
        aligned,
        perms,
        _distance(spec, state_a, state_b),
        _distance(spec, state_a, aligned),
        sweeps,
        diff,
    )
