"""The training loss of a network as an energy of its trainable parameters (a point).

During NEB steps the network runs on a private copy whose BatchNorm layers normalise with the
statistics of the current batch and track nothing; :meth:`ModelEnergy.evaluation_losses` (AutoNEB's
insertion test, Appendix A) runs in eval mode with exact BatchNorm statistics per point.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad_and_value, replace_all_batch_norm_modules_, vmap

from ..core.errors import ConfigError
from ..nn.batches import augment_batch, seeded_subset
from ..nn.points import (
    evaluate_model,
    has_batchnorm,
    load_point,
    point_of,
    recompute_bn_statistics,
    trainable_parameters,
)
from ..nn.runtime import autocast_bf16, full_precision
from ..settings.autoneb_config import EnergySettings
from .energy import Energy
from .linear_chain import LinearChain


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
        mode: ``"vmap"``, ``"loop"`` or ``"auto"`` (the batched kernel for a chain of linear
            layers, i.e. an MLP, else the loop: what the benchmarks measured faster; logged).
        chunk_size: at most this many pivots per vmap call (bounds memory); ``None`` = all.
        augment: augmentation of the NEB batches: a dataset's kind (``"cifar"``, ``"none"``;
            :func:`nobarriers.nn.batches.augment_batch`) or any ``augment(x, generator) -> x``;
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
        augment: str | Callable[[Tensor, torch.Generator], Tensor] | None = None,
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
        if isinstance(augment, str):
            kind = augment
            augment = None if kind == "none" else (lambda x, g: augment_batch(x, kind, g))
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
        self._batched_grad_and_value = vmap(grad_and_value(self._loss), in_dims=(0, None, None))
        self._batched_value = vmap(self._loss, in_dims=(0, None, None))
        # GPU speed options, fixed for the energy's life (they change which mode is faster)
        self.channels_last = bool(channels_last) and self.x.dim() == 4
        self.autocast_bf16 = bool(autocast_bf16)
        if self.channels_last:
            self._net = self._net.to(memory_format=torch.channels_last)
            self._net_params = [p for _, p in trainable_parameters(self._net)]

    @classmethod
    def from_settings(
        cls,
        model: nn.Module,
        x: Tensor,
        y: Tensor,
        settings: EnergySettings,
        augment_kind: str = "none",
        device: str | torch.device | None = None,
    ) -> ModelEnergy:
        """The energy the workflow's ``autoneb`` settings describe: ``settings`` from
        :func:`nobarriers.settings.autoneb_config.split_autoneb`, ``augment_kind`` the dataset's
        augmentation (used only if ``settings.augment``)."""
        return cls(
            model,
            x,
            y,
            batch_size=settings.batch_size,
            mode=settings.mode,
            augment=augment_kind if settings.augment else None,
            device=device,
            channels_last=settings.channels_last,
            autocast_bf16=settings.autocast_bf16,
        )

    def preferred_mode(self) -> str:
        """``vmap`` for a chain of linear layers (the batched :class:`LinearChain` kernel,
        1.5-2.3x the loop for MLPs), else the loop (vmapped convolutions are slower on a CPU;
        set ``mode: vmap`` where a GPU benchmark says otherwise)."""
        return "vmap" if self._chain is not None else "loop"

    def result_settings(self) -> dict:
        return {
            "batch_size": self.batch_size,
            "augment": self.augment is not None,
            "autocast_bf16": self.autocast_bf16,
        }

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

    def _params(self, flat: Tensor) -> dict[str, Tensor]:
        return {
            name: chunk.view(shape)
            for name, chunk, shape in zip(
                self._names, flat.split(self._numels), self._shapes, strict=True
            )
        }

    def _autocast(self):
        """bf16 autocast for NEB forward passes if ``autocast_bf16`` is on, else a no-op."""
        return autocast_bf16(self.device, self.autocast_bf16)

    def _loss(self, flat: Tensor, x: Tensor, y: Tensor) -> Tensor:
        with self._autocast():
            out = functional_call(self._net, self._params(flat), (x,))
        return F.cross_entropy(full_precision(out), y)

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
        grads, losses = self._batched_grad_and_value(points, x, y)
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
        return self._batched_value(points, x, y)

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
        return F.cross_entropy(full_precision(out), y)

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
        point on that subset (:func:`nobarriers.engine.evaluate.recompute_bn_statistics`)."""
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
        idx = seeded_subset(self.x.shape[0], subset_size, seed)
        if idx is None:
            x, y = self.x, self.y
        else:
            idx = idx.to(self.device)
            x, y = self.x[idx], self.y[idx]
        self._eval_cache = (subset_size, seed, x, y)
        return x, y
