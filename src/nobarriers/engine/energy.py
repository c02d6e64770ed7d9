"""Energies (loss functions) on which (Auto)NEB optimises paths.

A *point* is a flat 1-D float tensor of length :attr:`Energy.dim`. Algorithm 1 of Draxler et al.
(2018) needs, in every step, the loss and the gradient of every interior pivot. "Computing the
NEB forces can trivially be parallelised over the pivots" (Sec. 3.1): all pivots of a step are
evaluated on ONE common mini-batch, either vectorised over the pivots (``mode="vmap"``) or one
pivot after the other (``mode="loop"``); ``mode="auto"`` takes the one the benchmarks measured to
be faster for the energy (the batched kernel of an MLP, else the loop), so that reruns are bitwise
identical. This module holds the interface (:class:`Energy`) and any differentiable
function of a flat vector (:class:`FunctionEnergy`); networks are
:class:`nobarriers.engine.model_energy.ModelEnergy`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from torch import Tensor
from torch.func import grad_and_value, vmap

from ..core.errors import ConfigError
from ..settings.autoneb_config import MODES

log = logging.getLogger("nobarriers")


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
    def result_settings(self) -> dict:
        """The energy's settings that change results (not speed options): recorded in AutoNEB
        resume states, so that a state is never continued under other settings."""
        return {}

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

    def preferred_mode(self) -> str:
        """The mode ``auto`` takes: ``vmap`` where the energy has a batched kernel that beats
        the loop, else ``loop``. Subclasses say which (:class:`FunctionEnergy`: ``vmap``)."""
        return "loop"

    def _resolve_mode(
        self, points: Tensor, batch, repeats: int = 3, endpoints: Tensor | None = None
    ) -> str:
        """``auto``: the :meth:`preferred_mode`, falling back to the other one if it cannot run
        here (an operation vmap does not support). A rule, not a timing, so that two identical
        runs compute bit for bit the same (vmap and the loop differ in the last float bits, and
        timings on a shared machine differ from run to run); the rule is what the benchmarks
        measured (``benchmarks/bench_neb_step.py``: the batched MLP kernel is 1.5-2.3x faster
        than the loop, vmapped convolutions slower than the loop on a CPU)."""
        preferred = self.preferred_mode()
        other = "loop" if preferred == "vmap" else "vmap"
        kernel = self._vmap_losses_and_grads if preferred == "vmap" else self._loop_losses_and_grads
        try:
            self._chunked(kernel, points, batch)
            chosen = preferred
        except (RuntimeError, NotImplementedError) as exc:  # an op vmap does not support
            log.info("energy mode %s unavailable here: %s", preferred, str(exc).splitlines()[0])
            if self.device is not None and self.device.type == "cuda":
                torch.cuda.empty_cache()
            chosen = other
        log.info("energy mode auto -> %s", chosen)
        self.resolved_mode = chosen
        return chosen


class FunctionEnergy(Energy):
    """Any differentiable ``fn(x: Tensor[D]) -> scalar Tensor`` (analytic test surfaces etc.).

    ``mode="vmap"`` vectorises ``fn`` with ``torch.func.vmap(grad_and_value(fn))`` (``fn`` must
    then be vmap-compatible: no ``.item()``, no data-dependent control flow); ``"loop"`` calls it
    once per point.
    """

    def preferred_mode(self) -> str:
        return "vmap"  # one vectorised call; falls back to the loop where fn cannot be vmapped

    def __init__(self, fn: Callable[[Tensor], Tensor], dim: int, mode: str = "auto"):
        super().__init__(dim, mode)
        self.fn = fn
        self._batched_grad_and_value = vmap(grad_and_value(fn))
        self._batched_value = vmap(fn)

    def _vmap_losses_and_grads(self, points, batch):
        grads, losses = self._batched_grad_and_value(points)
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
        return self._batched_value(points)

    def _loop_losses(self, points, batch):
        return torch.stack([self.fn(p) for p in points])
