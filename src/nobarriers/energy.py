"""Energies (loss functions) on which (Auto)NEB optimises paths.

A *point* is a flat 1-D float tensor of length :attr:`Energy.dim`. For neural networks it holds the
**trainable parameters only**, flattened in ``model.named_parameters()`` order; BatchNorm running
statistics are never coordinates (see ``docs/design.md`` and item 2 of
``shared/notes/reference-pitfalls.md``).

Algorithm 1 of Draxler et al. (2018) needs, in every step, the loss and the gradient of every
interior pivot. "Computing the NEB forces can trivially be parallelised over the pivots" (Sec. 3.1):
all pivots of a step are evaluated on ONE common mini-batch (pitfall 5), either with
``torch.func.vmap`` over the pivots (``mode="vmap"``) or one pivot after the other
(``mode="loop"``); ``mode="auto"`` times both once on the real batch and keeps the faster.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad_and_value, replace_all_batch_norm_modules_, vmap

from .autoneb_config import MODES
from .errors import ConfigError

log = logging.getLogger("nobarriers")


# --------------------------------------------------------------------------------------------
# points <-> models
# --------------------------------------------------------------------------------------------


def trainable_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """``(name, parameter)`` of the coordinates of a point, in ``named_parameters()`` order."""
    return [(name, p) for name, p in model.named_parameters() if p.requires_grad]


def point_of(model: nn.Module) -> Tensor:
    """Flatten the trainable parameters of ``model`` into one detached 1-D tensor (a point)."""
    params = [p.detach().reshape(-1) for _, p in trainable_parameters(model)]
    if not params:
        raise ConfigError(f"{type(model).__name__} has no trainable parameters")
    return torch.cat(params).clone()


def load_point(model: nn.Module, point: Tensor) -> nn.Module:
    """Write ``point`` into the trainable parameters of ``model`` (in place); returns ``model``.

    Buffers (e.g. BatchNorm running statistics) are left untouched: recompute them with
    :func:`nobarriers.evaluate.recompute_bn_statistics` before evaluating the point.
    """
    params = trainable_parameters(model)
    dim = sum(p.numel() for _, p in params)
    if point.dim() != 1 or point.numel() != dim:
        raise ConfigError(
            f"point of shape {tuple(point.shape)} does not fit {type(model).__name__}, "
            f"which has {dim} trainable parameters"
        )
    with torch.no_grad():
        offset = 0
        for _, p in params:
            n = p.numel()
            p.copy_(point[offset : offset + n].view_as(p))
            offset += n
    return model


def has_batchnorm(model: nn.Module) -> bool:
    """Whether ``model`` contains a BatchNorm layer that tracks running statistics."""
    return any(
        isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
        for m in model.modules()
    )


# --------------------------------------------------------------------------------------------
# energies
# --------------------------------------------------------------------------------------------


def _full_precision(t: Tensor) -> Tensor:
    """Half-precision outputs (bf16 autocast) as float32 for the loss; others unchanged."""
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t


def _sync(device: torch.device | None) -> None:
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


class Energy:
    """Abstract energy ``L(point)``; subclasses implement the four ``_vmap_*``/``_loop_*`` kernels.

    Public interface (``docs/design.md``):

    * :meth:`sample_batch` -- one common batch for all pivots of a step (``None`` for functions);
    * :meth:`losses_and_grads` -- losses ``[M]`` and gradients ``[M, D]`` of points ``[M, D]``;
    * :meth:`losses` -- losses only, without autograd;
    * :meth:`evaluation_losses` -- the deterministic loss used by AutoNEB's insertion test
      (Appendix A); for networks on a fixed training subset with exact BatchNorm statistics.
    """

    dim: int
    device: torch.device | None = None

    def __init__(self, dim: int, mode: str = "auto", chunk_size: int | None = None):
        if mode not in MODES:
            raise ConfigError(f"energy mode {mode!r} is not one of {', '.join(MODES)}")
        if chunk_size is not None and chunk_size < 1:
            raise ConfigError(f"chunk_size must be >= 1 or None, got {chunk_size}")
        self.dim = int(dim)
        self.mode = mode
        self.chunk_size = chunk_size
        self.resolved_mode: str | None = None if mode == "auto" else mode

    # ---- to be provided by subclasses -------------------------------------------------------
    def _vmap_losses_and_grads(self, points: Tensor, batch) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def _loop_losses_and_grads(self, points: Tensor, batch) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def _vmap_losses(self, points: Tensor, batch) -> Tensor:
        raise NotImplementedError

    def _loop_losses(self, points: Tensor, batch) -> Tensor:
        raise NotImplementedError

    def _loop_losses_and_grads_into(self, points: Tensor, batch, out: Tensor) -> Tensor:
        """The loop kernel with the gradients written into ``out`` ``[M, D]``; returns the losses.
        Subclasses may override it to avoid the copy."""
        losses, grads = self._loop_losses_and_grads(points, batch)
        out.copy_(grads)
        return losses

    # ---- public interface --------------------------------------------------------------------
    def sample_batch(self, generator: torch.Generator):
        """A batch shared by all pivots of one NEB step; ``None`` if the energy needs no data."""
        return None

    def losses_and_grads(self, points: Tensor, batch=None) -> tuple[Tensor, Tensor]:
        """Losses ``[M]`` and gradients ``[M, D]`` of ``points`` ``[M, D]`` on ``batch``."""
        points = self._check_points(points)
        mode = self.resolved_mode or self._resolve_mode(points, batch)
        fn = self._vmap_losses_and_grads if mode == "vmap" else self._loop_losses_and_grads
        while True:
            try:
                losses, grads = self._chunked(fn, points, batch)
                return losses.detach(), grads.detach()
            except torch.OutOfMemoryError:
                # more pivots than when the mode was chosen: vmap over fewer pivots at a time
                size = self.chunk_size or points.shape[0]
                if mode != "vmap" or size <= 1:
                    raise
                self.chunk_size = max(1, size // 2)
                log.warning(
                    "out of memory with vmap over %d pivots; chunk_size -> %d",
                    size,
                    self.chunk_size,
                )
                if self.device is not None and self.device.type == "cuda":
                    torch.cuda.empty_cache()

    def path_losses_and_grads(
        self,
        path: Tensor,
        batch=None,
        out: Tensor | None = None,
        endpoint_losses: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """One NEB step's evaluation: losses ``[N+2]`` of all pivots of ``path`` ``[N+2, D]``
        and gradients ``[N, D]`` of the interior ones, all on ``batch``.

        Batched (``vmap``) energies evaluate the whole path in ONE vectorised call (the two
        wasted endpoint gradients cost less than a second call); the loop evaluates the interior
        with gradients (written into ``out`` when given, a reusable ``[N, D]`` buffer) and the
        endpoints forward-only. Given ``endpoint_losses`` (2 values), the endpoints are not
        evaluated and these are returned for them. The caller owns the returned gradients (NEB
        updates them in place)."""
        path = self._check_points(path)
        interior = path[1:-1]
        ends = path[:: path.shape[0] - 1]
        mode = self.resolved_mode or self._resolve_mode(
            interior, batch, endpoints=ends if endpoint_losses is None else None
        )
        if mode == "vmap" and endpoint_losses is None:
            losses, grads = self.losses_and_grads(path, batch)
            return losses, grads[1:-1]
        if mode == "loop" and out is not None:
            losses, grads = self._loop_losses_and_grads_into(interior, batch, out), out
        else:
            losses, grads = self.losses_and_grads(interior, batch)
        if endpoint_losses is None:
            ends = self.losses(ends, batch)
        else:
            ends = endpoint_losses.to(losses)
        return torch.cat([ends[:1], losses, ends[1:]]), grads

    def mean_batch_losses(self, points: Tensor, n_batches: int, generator: torch.Generator):
        """Mean losses ``[M]`` of ``points`` over ``n_batches`` batches drawn like NEB batches
        (:meth:`sample_batch`; exact for energies without data)."""
        total = None
        for _ in range(n_batches):
            part = self.losses(points, self.sample_batch(generator))
            total = part if total is None else total + part
        return total / n_batches

    def losses(self, points: Tensor, batch=None) -> Tensor:
        """Losses ``[M]`` of ``points`` ``[M, D]`` on ``batch``, without gradients."""
        points = self._check_points(points)
        mode = self.resolved_mode or "loop"
        fn = self._vmap_losses if mode == "vmap" else self._loop_losses
        with torch.no_grad():
            return self._chunked(fn, points, batch).detach()

    def evaluation_losses(self, points: Tensor, subset_size: int | None = None, seed: int = 0):
        """Deterministic losses for AutoNEB's insertion test; here simply :meth:`losses`."""
        return self.losses(points)

    # ---- helpers -----------------------------------------------------------------------------
    def _check_points(self, points: Tensor) -> Tensor:
        if points.dim() == 1:
            points = points.unsqueeze(0)
        if points.dim() != 2 or points.shape[1] != self.dim:
            raise ConfigError(
                f"points of shape {tuple(points.shape)} do not match the energy's dimension "
                f"{self.dim} (expected [M, {self.dim}])"
            )
        if self.device is not None and points.device != self.device:
            points = points.to(self.device)
        return points

    def _chunked(self, fn, points: Tensor, batch):
        size = self.chunk_size or points.shape[0]
        parts = [fn(chunk, batch) for chunk in points.split(size)]
        if isinstance(parts[0], tuple):
            return tuple(torch.cat(p) for p in zip(*parts, strict=True))
        return torch.cat(parts)

    def _resolve_mode(
        self, points: Tensor, batch, repeats: int = 3, endpoints: Tensor | None = None
    ) -> str:
        """Time vmap and loop on the real batch (a warm-up each, then ``repeats`` interleaved
        rounds; the fastest round of each counts, which load on a shared machine distorts
        least) and keep the faster mode. With ``endpoints`` ([2, D]) the work of one NEB step is
        timed: vmap over the whole path, the loop with the endpoints forward-only."""
        if endpoints is None:
            kernels = {
                "vmap": lambda: self._chunked(self._vmap_losses_and_grads, points, batch),
                "loop": lambda: self._chunked(self._loop_losses_and_grads, points, batch),
            }
        else:
            path = torch.cat([endpoints[:1], points, endpoints[1:]])

            def loop_step():
                self._loop_losses_and_grads(points, batch)
                with torch.no_grad():
                    self._loop_losses(endpoints, batch)

            kernels = {
                "vmap": lambda: self._chunked(self._vmap_losses_and_grads, path, batch),
                "loop": loop_step,
            }
        timings: dict[str, float] = {}
        for mode, kernel in kernels.items():
            try:
                kernel()  # warm-up (allocations, kernel selection)
                timings[mode] = float("inf")
            except (RuntimeError, NotImplementedError) as exc:  # unsupported op or out of memory
                log.info("energy mode %s unavailable here: %s", mode, str(exc).splitlines()[0])
                if self.device is not None and self.device.type == "cuda":
                    torch.cuda.empty_cache()
        if not timings:
            raise ConfigError("neither vmap nor loop evaluation works for this energy")
        for _ in range(repeats):
            for mode in timings:
                _sync(self.device)
                t0 = time.perf_counter()
                kernels[mode]()
                _sync(self.device)
                timings[mode] = min(timings[mode], time.perf_counter() - t0)
        chosen = min(timings, key=timings.get)
        log.info(
            "energy mode auto -> %s (%s per step for %d points)",
            chosen,
            ", ".join(f"{m} {t * 1e3:.1f} ms" for m, t in timings.items()),
            points.shape[0],
        )
        self.resolved_mode = chosen
        return chosen


class FunctionEnergy(Energy):
    """Any differentiable ``fn(x: Tensor[D]) -> scalar Tensor`` (analytic test surfaces etc.).

    ``mode="vmap"`` vectorises ``fn`` with ``torch.func.vmap(grad_and_value(fn))`` (``fn`` must
    then be vmap-compatible: no ``.item()``, no data-dependent control flow); ``"loop"`` calls it
    once per point.
    """

    def __init__(self, fn: Callable[[Tensor], Tensor], dim: int, mode: str = "auto"):
        super().__init__(dim, mode)
        self.fn = fn
        self._vg = vmap(grad_and_value(fn))
        self._v = vmap(fn)

    def _vmap_losses_and_grads(self, points, batch):
        grads, losses = self._vg(points)
        return losses, grads

    def _loop_losses_and_grads(self, points, batch):
        losses, grads = [], []
        for p in points:
            x = p.detach().requires_grad_(True)
            with torch.enable_grad():
                value = self.fn(x)
                (g,) = torch.autograd.grad(value, x)
            losses.append(value.detach())
            grads.append(g)
        return torch.stack(losses), torch.stack(grads)

    def _vmap_losses(self, points, batch):
        return self._v(points)

    def _loop_losses(self, points, batch):
        return torch.stack([self.fn(p) for p in points])


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
            _full_precision(logits).reshape(n * batch, -1), y.repeat(n), reduction="none"
        )
        return per_sample.view(n, batch).mean(1)


class ModelEnergy(Energy):
    """Mean cross-entropy of ``model`` on mini-batches of ``(x, y)`` as a function of a point.

    Coordinates are the trainable parameters of ``model`` (``named_parameters()`` order). During
    NEB steps the network runs on a private copy whose BatchNorm layers normalise with the
    statistics of the current batch and track no running statistics
    (``torch.func.replace_all_batch_norm_modules_``); the copy is in eval mode otherwise, so the
    energy is deterministic given the batch (no dropout noise). ``model`` itself is never changed.

    Args:
        model: network template (its current parameters are irrelevant).
        x, y: training inputs and integer labels.
        batch_size: size of the common NEB mini-batch.
        mode: ``"vmap"``, ``"loop"`` or ``"auto"`` (time both once, keep the faster; logged).
        chunk_size: at most this many pivots per vmap call (bounds memory); ``None`` = all.
        augment: optional batched augmentation ``augment(x, generator) -> x`` for NEB batches;
            never used for :meth:`evaluation_losses`.
        device: where to compute; default the device of ``x``.
        channels_last: NHWC memory format for 4-D batches and the network (a GPU speed option;
            results equal up to float rounding).
        autocast_bf16: run NEB forward/backward under ``torch.autocast(bfloat16)``; losses and
            gradients are returned in float32; :meth:`evaluation_losses` stays fp32 (a GPU speed
            option; the paper computes in fp32).
    """

    def __init__(
        self,
        model: nn.Module,
        x: Tensor,
        y: Tensor,
        batch_size: int,
        mode: str = "auto",
        chunk_size: int | None = None,
        augment: Callable[[Tensor, torch.Generator], Tensor] | None = None,
        device: str | torch.device | None = None,
        channels_last: bool = False,
        autocast_bf16: bool = False,
    ):
        if x.shape[0] != y.shape[0]:
            raise ConfigError(f"x has {x.shape[0]} samples but y has {y.shape[0]} labels")
        if x.shape[0] == 0:
            raise ConfigError("ModelEnergy needs at least one training sample")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.device = torch.device(device) if device is not None else x.device
        self.x = x.to(self.device)
        self.y = y.to(self.device)
        self.batch_size = int(batch_size)
        self.augment = augment
        # evaluation copy: real BatchNorm with running statistics (for evaluation_losses)
        self.model = copy.deepcopy(model).to(self.device)
        # NEB copy: BatchNorm on batch statistics, nothing tracked, dropout off
        self._net = replace_all_batch_norm_modules_(copy.deepcopy(model).to(self.device)).eval()
        params = trainable_parameters(self._net)
        self._net_params = [p for _, p in params]
        self._names = [name for name, _ in params]
        self._shapes = [p.shape for _, p in params]
        self._numels = [p.numel() for _, p in params]
        # MLPs: a hand-batched kernel instead of functorch's vmap (same function, less overhead)
        self._chain = LinearChain.of(self._net, self._names, self._numels)
        super().__init__(sum(self._numels), mode, chunk_size)
        self._eval_cache: tuple[int | None, int, Tensor, Tensor] | None = None
        self._vg = vmap(grad_and_value(self._loss), in_dims=(0, None, None))
        self._v = vmap(self._loss, in_dims=(0, None, None))
        self.channels_last = False
        self.autocast_bf16 = False
        self.set_speed_options(channels_last=channels_last, autocast_bf16=autocast_bf16)

    def set_speed_options(self, channels_last: bool = False, autocast_bf16: bool = False) -> None:
        """Switch the GPU speed options (see the class docstring); a changed option re-runs the
        ``auto`` mode calibration, since it changes which mode is faster."""
        channels_last = bool(channels_last) and self.x.dim() == 4
        autocast_bf16 = bool(autocast_bf16)
        if (channels_last, autocast_bf16) == (self.channels_last, self.autocast_bf16):
            return
        self.channels_last = channels_last
        self.autocast_bf16 = autocast_bf16
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        self._net = self._net.to(memory_format=fmt)
        self._net_params = [p for _, p in trainable_parameters(self._net)]
        if self.mode == "auto":
            self.resolved_mode = None

    # ---- points <-> models -------------------------------------------------------------------
    def point_of(self, model: nn.Module) -> Tensor:
        """Flatten the trainable parameters of ``model`` (same architecture) into a point."""
        point = point_of(model)
        if point.numel() != self.dim:
            raise ConfigError(
                f"{type(model).__name__} has {point.numel()} trainable parameters, "
                f"the energy expects {self.dim}"
            )
        return point.to(self.device)

    def load_point(self, model: nn.Module, point: Tensor) -> nn.Module:
        """Write ``point`` into the trainable parameters of ``model`` (in place)."""
        return load_point(model, point)

    def _params(self, flat: Tensor) -> dict[str, Tensor]:
        return {
            name: chunk.view(shape)
            for name, chunk, shape in zip(
                self._names, flat.split(self._numels), self._shapes, strict=True
            )
        }

    def _autocast(self):
        """bf16 autocast for NEB forward passes if ``autocast_bf16`` is on, else a no-op."""
        if self.autocast_bf16:
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _loss(self, flat: Tensor, x: Tensor, y: Tensor) -> Tensor:
        with self._autocast():
            out = functional_call(self._net, self._params(flat), (x,))
        return F.cross_entropy(_full_precision(out), y)

    # ---- data --------------------------------------------------------------------------------
    def sample_batch(self, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """``batch_size`` distinct training samples drawn with ``generator`` (+ augmentation)."""
        n = self.x.shape[0]
        idx = torch.randperm(n, generator=generator, device=generator.device)[: self.batch_size]
        idx = idx.to(self.device)
        x, y = self.x.index_select(0, idx), self.y.index_select(0, idx)
        if self.augment is not None:
            x = self.augment(x, generator)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y

    def _full_batches(self):
        return list(zip(self.x.split(self.batch_size), self.y.split(self.batch_size), strict=True))

    # ---- kernels -----------------------------------------------------------------------------
    def _vmap_losses_and_grads(self, points, batch):
        x, y = batch
        if self._chain is not None:
            with torch.enable_grad():
                points = points.detach().requires_grad_(True)
                with self._autocast():
                    losses = self._chain.losses(points, x, y)
                (grads,) = torch.autograd.grad(losses.sum(), points)
            return losses.detach(), grads
        grads, losses = self._vg(points, x, y)
        return losses, grads

    def _loop_losses_and_grads(self, points, batch):
        grads = torch.empty_like(points)
        return self._loop_losses_and_grads_into(points, batch, grads), grads

    def _loop_losses_and_grads_into(self, points, batch, out):
        # One ordinary forward/backward per pivot on the NEB copy's own parameters (the pivot is
        # copied in): the same work as a training step, without functional_call's per-call
        # parameter swapping.
        x, y = batch
        losses = points.new_empty(points.shape[0])
        for k, point in enumerate(points):
            self._load_into_net(point)
            with torch.enable_grad():
                loss = self._net_loss(x, y)
                loss.backward()
            losses[k] = loss.detach()
            torch.cat([param.grad.reshape(-1) for param in self._net_params], out=out[k])
        return losses

    def _vmap_losses(self, points, batch):
        x, y = batch
        if self._chain is not None:
            with self._autocast():
                return self._chain.losses(points, x, y)
        return self._v(points, x, y)

    def _loop_losses(self, points, batch):
        x, y = batch
        losses = points.new_empty(points.shape[0])
        for k, point in enumerate(points):
            self._load_into_net(point)
            losses[k] = self._net_loss(x, y)
        return losses

    def _load_into_net(self, point: Tensor) -> None:
        """Copy ``point`` into the NEB copy's parameters and clear their gradients."""
        with torch.no_grad():
            for param, chunk in zip(self._net_params, point.split(self._numels), strict=True):
                param.copy_(chunk.view_as(param))
                param.grad = None

    def _net_loss(self, x: Tensor, y: Tensor) -> Tensor:
        """Mean cross-entropy of the NEB copy with its current parameters on ``(x, y)``."""
        with self._autocast():
            out = self._net(x)
        return F.cross_entropy(_full_precision(out), y)

    def losses(self, points: Tensor, batch=None) -> Tensor:
        """Losses on ``batch`` (BN on batch statistics); ``batch=None``: the whole training set in
        un-augmented chunks of ``batch_size`` (sample-weighted mean of the chunk losses)."""
        if batch is not None:
            return super().losses(points, batch)
        total = None
        for x, y in self._full_batches():
            part = super().losses(points, (x, y)) * x.shape[0]
            total = part if total is None else total + part
        return total / self.x.shape[0]

    def evaluation_losses(self, points: Tensor, subset_size: int | None = None, seed: int = 0):
        """Loss of each point on a fixed, seeded training subset of ``subset_size`` samples
        (``None`` = all), un-augmented, in eval mode after estimating BatchNorm statistics ONCE per
        point on that subset (:func:`nobarriers.evaluate.recompute_bn_statistics`)."""
        from .evaluate import evaluate_model, recompute_bn_statistics

        points = self._check_points(points)
        x, y = self._eval_subset(subset_size, seed)
        bn = has_batchnorm(self.model)
        out = []
        for p in points:
            load_point(self.model, p)
            if bn:
                recompute_bn_statistics(self.model, x, self.batch_size)
            out.append(evaluate_model(self.model, x, y, self.batch_size)["loss"])
        return torch.tensor(out, dtype=torch.float64)

    def _eval_subset(self, subset_size: int | None, seed: int) -> tuple[Tensor, Tensor]:
        cache = self._eval_cache
        if cache is not None and cache[0] == subset_size and cache[1] == seed:
            return cache[2], cache[3]
        n = self.x.shape[0]
        if subset_size is None or subset_size >= n:
            x, y = self.x, self.y
        else:
            gen = torch.Generator().manual_seed(int(seed))
            idx = torch.randperm(n, generator=gen)[:subset_size].sort().values.to(self.device)
            x, y = self.x[idx], self.y[idx]
        self._eval_cache = (subset_size, seed, x, y)
        return x, y
