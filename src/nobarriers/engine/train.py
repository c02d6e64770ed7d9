"""Training of the minima: one minimum from one seed, resumable after every epoch.

The paper trains CNNs and ResNets per He et al. (2016) and DenseNets per Huang et al. (2017):
SGD with momentum 0.9, learning rate 0.1 divided by 10 after 50 % and 75 % of training, weight
decay 1e-4, batch 128 (CNN, ResNet, 136 epochs) or 64 with Nesterov momentum (DenseNet, 266
epochs), random 4-pixel crops and horizontal flips (:mod:`nobarriers.settings.recipes`).

:func:`train_minimum` records after every epoch a learning curve entry measured like every
reported number -- the full *un-augmented* training set and the test set, BatchNorm statistics
recomputed exactly (:func:`exact_bn_metrics`), so that Table B.1's Epoch column compares like
with like -- and writes a checkpoint
(:mod:`nobarriers.formats.checkpoint`); re-running the same call after a kill continues from the
last finished epoch and, on the CPU, ends bitwise identical to an uninterrupted run. At the end
the BatchNorm statistics are recomputed exactly on the un-augmented training set, the final
metrics and test predictions are computed, and the minimum file is written
(:mod:`nobarriers.formats.minimum`); the checkpoint is then deleted.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from ..core.errors import DivergenceError, FileFormatError
from ..core.progress import Progress, note_resume_point
from ..formats.checkpoint import load_checkpoint, save_checkpoint
from ..formats.minimum import write_minimum
from ..models import build_model
from ..nn.batches import augment_batch
from ..nn.points import evaluate_model, recompute_bn_statistics
from ..nn.runtime import autocast_bf16, capture_rng_state, restore_rng_state, seed_everything
from ..settings.recipes import SPEED_OPTIONS, lr_at_epoch, milestone_epochs, validate_recipe
from .optim import SGD

_LOGGER = logging.getLogger("nobarriers")


def exact_bn_metrics(model, tensors, batch_size: int, restore: bool) -> tuple[dict, dict]:
    """Train and test metrics of ``model`` the way every reported number is measured: BatchNorm
    statistics recomputed exactly on the un-augmented training set, then eval mode.

    ``tensors`` = ``(x_train, y_train, x_test, y_test)``. With ``restore`` the model's own
    running statistics are put back afterwards, so training goes on exactly as without the
    measurement (it draws no random numbers). Costs one forward pass over the training set more
    than evaluating with the running statistics (README, "Performance")."""
    x_train, y_train, x_test, y_test = tensors
    buffers = {}
    if restore:
        buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    recompute_bn_statistics(model, x_train, batch_size)
    train = evaluate_model(model, x_train, y_train, batch_size)
    test = evaluate_model(model, x_test, y_test, batch_size)
    if restore:
        with torch.no_grad():
            for name, b in model.named_buffers():
                b.copy_(buffers[name])
    return train, test


def train_minimum(
    arch: str,
    data,
    recipe: dict,
    seed: int,
    out_path,
    checkpoint_path,
    config_hash: str = "",
    log: logging.Logger | None = None,
    device=None,
    on_epoch_end: Callable[[int, dict], None] | None = None,
    identity: dict | None = None,
) -> dict:
    """Train ``arch`` on ``data`` from ``seed`` with ``recipe``; write the minimum to ``out_path``.

    Resumes from ``checkpoint_path`` if it exists (same arch, dataset, seed, recipe and
    ``config_hash``, else :class:`ConfigError`). ``on_epoch_end(epoch, entry)`` is called after
    each epoch's checkpoint is written (1-based epoch; a test hook: raising from it simulates a
    killed job). ``identity``: the row's identity keys (a user network's ``model`` spec, which
    builds it, and a user dataset's ``data``), stored in the minimum file. Returns the final
    metrics (train/test loss and error with exact BatchNorm).
    """
    logger = log or _LOGGER
    recipe = validate_recipe(recipe, where=f"recipe for {arch}")
    seed = int(seed)
    out_path = Path(out_path)
    checkpoint_path = Path(checkpoint_path)
    device = torch.device(device) if device is not None else data.x_train.device
    dataset_name = str(data.name)

    x_train = data.x_train.to(device)
    y_train = data.y_train.to(device)
    x_test = data.x_test.to(device)
    y_test = data.y_test.to(device)
    n_train = int(x_train.shape[0])
    augment = data.augment if (recipe["augment"] and data.augment != "none") else None

    seed_everything(seed)
    identity = dict(identity or {})
    spec = identity.get("model")
    model = build_model(arch, data.num_classes, tuple(data.input_shape), spec=spec).to(device)
    channels_last = recipe["channels_last"] and x_train.dim() == 4
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    autocast = autocast_bf16(device, recipe["autocast_bf16"])
    optimizer = SGD(
        model.parameters(),
        lr=recipe["lr"],
        momentum=recipe["momentum"],
        nesterov=recipe["nesterov"],
        weight_decay=recipe["weight_decay"],
    )
    # mini-batch order on the CPU, augmentation on the data's device; both seeded from `seed`
    batch_gen = torch.Generator().manual_seed(seed * 2 + 1)
    aug_gen = torch.Generator(device=device).manual_seed(seed * 2 + 2)
    generators = {"batches": batch_gen, "augment": aug_gen}

    run = {  # a checkpoint continues only the same run; speed options may change
        "arch": arch,
        "dataset": dataset_name,
        "seed": seed,
        "recipe": {k: v for k, v in recipe.items() if k not in SPEED_OPTIONS},
        "config_hash": str(config_hash),
    }
    history: list[dict] = []
    start_epoch = 0
    if checkpoint_path.exists():
        ckpt = load_checkpoint(checkpoint_path, run)
        try:
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            restore_rng_state(ckpt["rng"], generators)
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise FileFormatError(
                f"checkpoint {checkpoint_path}: does not fit {arch} ({exc}); delete it to restart"
            ) from exc
        history = list(ckpt["history"])
        start_epoch = int(ckpt["epochs_done"])
        logger.info(
            "%s/%s seed %d: resuming from %s after epoch %d/%d",
            dataset_name,
            arch,
            seed,
            checkpoint_path,
            start_epoch,
            recipe["epochs"],
        )
    else:
        n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        logger.info(
            "%s/%s seed %d: training %d epochs, %d parameters, %d samples, batch %d, device %s",
            dataset_name,
            arch,
            seed,
            recipe["epochs"],
            n_params,
            n_train,
            recipe["batch_size"],
            device,
        )

    epochs = recipe["epochs"]
    bs = recipe["batch_size"]
    progress = Progress(
        epochs,
        f"{dataset_name}/{arch} seed {seed} epoch",
        logger=logger,
        every_s=0.0,
        start=start_epoch,
    )
    for epoch in range(start_epoch, epochs):
        lr = lr_at_epoch(recipe, epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        model.train()
        order = torch.randperm(n_train, generator=batch_gen).to(device)
        loss_sum = torch.zeros((), device=device)
        for start in range(0, n_train, bs):
            idx = order[start : start + bs]
            if idx.numel() < 2 and start > 0:  # BatchNorm cannot train on a single sample
                break
            xb = x_train.index_select(0, idx)
            yb = y_train.index_select(0, idx)
            if augment is not None:
                xb = augment_batch(xb, augment, aug_gen)
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            with autocast:
                out = model(xb)
            loss = F.cross_entropy(out.float(), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach()
        batch_loss = float(loss_sum)
        train, test = exact_bn_metrics(
            model, (x_train, y_train, x_test, y_test), recipe["eval_batch_size"], restore=True
        )
        if not (math.isfinite(batch_loss) and math.isfinite(train["loss"])):
            raise DivergenceError(
                f"{dataset_name}/{arch} seed {seed}: training loss became "
                f"{train['loss'] if math.isfinite(batch_loss) else batch_loss} in epoch "
                f"{epoch + 1}/{epochs} (lr {lr:g}); lower the recipe's 'lr'. "
                f"No minimum was written to {out_path}"
            )
        entry = {
            "epoch": epoch + 1,
            "lr": lr,
            "train_loss": float(train["loss"]),
            "train_error": float(train["error"]),
            "test_loss": float(test["loss"]),
            "test_error": float(test["error"]),
        }
        history.append(entry)
        save_checkpoint(
            checkpoint_path,
            run,
            epochs_done=epoch + 1,
            model=model.state_dict(),
            optimizer=optimizer.state_dict(),
            scheduler={
                "milestones": milestone_epochs(recipe),
                "gamma": recipe["lr_gamma"],
                "last_epoch": epoch + 1,
            },
            rng=capture_rng_state(generators),
            history=history,
        )
        note_resume_point(
            f"{dataset_name}/{arch} seed {seed}: epoch {epoch + 1}/{epochs} saved in "
            f"{checkpoint_path}; a rerun resumes with epoch {epoch + 2}"
        )
        progress.update(
            lr=lr,
            train_loss=entry["train_loss"],
            train_err=entry["train_error"],
            test_loss=entry["test_loss"],
            test_err=entry["test_error"],
        )
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, entry)

    # the minimum keeps its exact statistics: the final numbers are those of the last epoch
    train, test = exact_bn_metrics(
        model, (x_train, y_train, x_test, y_test), recipe["eval_batch_size"], restore=False
    )
    metrics = {
        "train_loss": float(train["loss"]),
        "train_error": float(train["error"]),
        "test_loss": float(test["loss"]),
        "test_error": float(test["error"]),
    }
    if not all(math.isfinite(v) for v in metrics.values()):
        raise DivergenceError(
            f"{dataset_name}/{arch} seed {seed}: final loss is not finite ({metrics}); "
            f"no minimum was written to {out_path}"
        )
    write_minimum(
        out_path,
        model.state_dict(),
        test["predictions"],
        arch=arch,
        dataset=dataset_name,
        seed=seed,
        recipe=recipe,
        metrics=metrics,
        history=history,
        config_hash=str(config_hash),
        num_classes=int(data.num_classes),
        input_shape=tuple(int(s) for s in data.input_shape),
        identity=identity,
    )
    logger.info(
        "%s/%s seed %d: minimum written to %s | train loss %.4g err %.2f%% | "
        "test loss %.4g err %.2f%%",
        dataset_name,
        arch,
        seed,
        out_path,
        metrics["train_loss"],
        100 * metrics["train_error"],
        metrics["test_loss"],
        100 * metrics["test_error"],
    )
    if checkpoint_path.exists():
        os.unlink(checkpoint_path)
    return metrics
