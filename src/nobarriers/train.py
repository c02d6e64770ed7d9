"""Training of the minima: recipes, resumable per-epoch checkpoints, minimum files.

Recipes are plain dicts (the workflow config passes them through) with exactly the keys of
:data:`RECIPE_KEYS`; :func:`validate_recipe` checks them and :func:`recipe_for` returns the family
default. The paper trains CNNs and ResNets per He et al. (2016) and DenseNets per Huang et al.
(2017): SGD with momentum 0.9, learning rate 0.1 divided by 10 after 50 % and 75 % of training,
weight decay 1e-4, batch 128 (CNN, ResNet, 136 epochs) or 64 with Nesterov momentum (DenseNet,
266 epochs), random 4-pixel crops and horizontal flips. ``"digits"`` is a short CPU recipe for the
sklearn digits data used by the tests and the smoke workflow.

:func:`train_minimum` trains one minimum from one seed. After every epoch it records a learning
curve entry measured on the full *un-augmented* training set in eval mode (running BatchNorm
statistics) and on the test set, and writes a checkpoint atomically; re-running the same call after
a kill continues from the last finished epoch and, on the CPU, ends bitwise identical to an
uninterrupted run. At the end the BatchNorm statistics are recomputed exactly on the un-augmented
training set, final metrics and test predictions are computed, and the minimum file
(``results/{dataset}/{arch}/minima/{seed}.safetensors``, format ``minimum/1``, see
``docs/design.md``) is written atomically; the checkpoint is then deleted.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .errors import ConfigError, DivergenceError, FileFormatError
from .optim import SGD
from .progress import Progress
from .recipes import (  # noqa: F401 - re-exported: train.RECIPES etc. stay valid
    DIGITS_RECIPE,
    OPTIONAL_RECIPE_KEYS,
    PAPER_RECIPES,
    RECIPE_KEYS,
    RECIPES,
    arch_family,
    lr_at_epoch,
    milestone_epochs,
    recipe_for,
    validate_recipe,
)
from .runtime import atomic_path, provenance, seed_everything

_LOGGER = logging.getLogger("nobarriers")

MINIMUM_FORMAT = "minimum/1"
CHECKPOINT_FORMAT = "train-checkpoint/1"
PREDICTIONS_KEY = "test_predictions"


def learning_curve_crossing(history: list[dict], level: float) -> int | None:
    """First epoch (1-based, as stored) whose training loss is below ``level``, else ``None``.

    This is Table B.1's "Epoch" column with ``level`` the saddle training loss.
    """
    for entry in history:
        if entry["train_loss"] < level:
            return int(entry["epoch"])
    return None


# --------------------------------------------------------------------------------------------
# RNG states as tensors (checkpoints are loaded with ``torch.load(weights_only=True)``)


def _capture_rng(generators: dict[str, torch.Generator]) -> dict:
    version, mt, gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_cached = np.random.get_state(legacy=True)
    state = {
        "python": {
            "version": int(version),
            "state": torch.tensor(mt, dtype=torch.int64),
            "gauss": gauss,
        },
        "numpy": {
            "name": str(np_name),
            "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "cached_gaussian": float(np_cached),
        },
        "torch": torch.get_rng_state(),
        "generators": {name: g.get_state() for name, g in generators.items()},
    }
    if torch.cuda.is_available():
        state["cuda"] = [s for s in torch.cuda.get_rng_state_all()]
    return state


def _restore_rng(state: dict, generators: dict[str, torch.Generator]) -> None:
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    npst = state["numpy"]
    np.random.set_state(
        (
            npst["name"],
            npst["keys"].numpy().astype(np.uint32),
            npst["pos"],
            npst["has_gauss"],
            npst["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for name, g in generators.items():
        g.set_state(state["generators"][name])


# --------------------------------------------------------------------------------------------
# checkpoints


def _canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True)


def _load_checkpoint(path: Path, expected: dict) -> dict:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
        raise FileFormatError(
            f"checkpoint {path}: cannot be read as a training checkpoint ({exc}); "
            "delete it to restart training from scratch"
        ) from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise FileFormatError(
            f"checkpoint {path}: not a {CHECKPOINT_FORMAT} file; delete it to restart training"
        )
    for key, value in expected.items():
        stored = ckpt.get(key)
        if key == "recipe":
            same = isinstance(stored, str) and stored == _canonical(value)
        else:
            same = stored == value
        if not same:
            raise ConfigError(
                f"checkpoint {path}: field {key!r} is {stored!r} but this run has {value!r}; "
                "it belongs to another training run (delete it or fix the output path)"
            )
    return ckpt


# --------------------------------------------------------------------------------------------
# training


def _evaluate(model, x, y, batch_size) -> dict:
    from .evaluate import evaluate_model

    model.eval()
    out = evaluate_model(model, x, y, batch_size)
    return out


def _autocast(device: torch.device, enabled: bool):
    """``torch.autocast`` to bfloat16 on ``device`` if ``enabled``, else a no-op context."""
    import contextlib

    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


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
) -> dict:
    """Train ``arch`` on ``data`` from ``seed`` with ``recipe``; write the minimum to ``out_path``.

    Resumes from ``checkpoint_path`` if it exists (same arch, dataset, seed, recipe and
    ``config_hash``, else :class:`ConfigError`). ``on_epoch_end(epoch, entry)`` is called after
    each epoch's checkpoint is written (1-based epoch; a test hook: raising from it simulates a
    killed job). Returns the final metrics (train/test loss and error with exact BatchNorm).
    """
    from .evaluate import recompute_bn_statistics
    from .models import build_model

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
    model = build_model(arch, data.num_classes, tuple(data.input_shape)).to(device)
    channels_last = recipe["channels_last"] and x_train.dim() == 4
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    autocast = _autocast(device, recipe["autocast_bf16"])
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

    identity = {
        "arch": arch,
        "dataset": dataset_name,
        "seed": seed,
        "recipe": recipe,
        "config_hash": str(config_hash),
    }
    history: list[dict] = []
    start_epoch = 0
    if checkpoint_path.exists():
        ckpt = _load_checkpoint(checkpoint_path, identity)
        try:
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            _restore_rng(ckpt["rng"], generators)
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
                from .data import augment_batch

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
        train = _evaluate(model, x_train, y_train, recipe["eval_batch_size"])
        if not (math.isfinite(batch_loss) and math.isfinite(train["loss"])):
            raise DivergenceError(
                f"{dataset_name}/{arch} seed {seed}: training loss became "
                f"{train['loss'] if math.isfinite(batch_loss) else batch_loss} in epoch "
                f"{epoch + 1}/{epochs} (lr {lr:g}); lower the recipe's 'lr'. "
                f"No minimum was written to {out_path}"
            )
        test = _evaluate(model, x_test, y_test, recipe["eval_batch_size"])
        entry = {
            "epoch": epoch + 1,
            "lr": lr,
            "train_loss": float(train["loss"]),
            "train_error": float(train["error"]),
            "test_loss": float(test["loss"]),
            "test_error": float(test["error"]),
        }
        history.append(entry)
        ckpt = {
            "format": CHECKPOINT_FORMAT,
            **{k: v for k, v in identity.items() if k != "recipe"},
            "recipe": _canonical(recipe),
            "epochs_done": epoch + 1,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": {
                "milestones": milestone_epochs(recipe),
                "gamma": recipe["lr_gamma"],
                "last_epoch": epoch + 1,
            },
            "rng": _capture_rng(generators),
            "history": history,
        }
        with atomic_path(checkpoint_path) as tmp:
            torch.save(ckpt, tmp)
        progress.update(
            lr=lr,
            train_loss=entry["train_loss"],
            train_err=entry["train_error"],
            test_loss=entry["test_loss"],
            test_err=entry["test_error"],
        )
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, entry)

    # exact BatchNorm statistics on the un-augmented training set, then the final numbers
    recompute_bn_statistics(model, x_train, recipe["eval_batch_size"])
    train = _evaluate(model, x_train, y_train, recipe["eval_batch_size"])
    test = _evaluate(model, x_test, y_test, recipe["eval_batch_size"])
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


# --------------------------------------------------------------------------------------------
# minimum files


def write_minimum(
    path,
    state_dict: dict,
    predictions,
    *,
    arch: str,
    dataset: str,
    seed: int,
    recipe: dict,
    metrics: dict,
    history: list[dict],
    config_hash: str = "",
    num_classes: int | None = None,
    input_shape: tuple | None = None,
) -> None:
    """Write a ``minimum/1`` safetensors file atomically (see ``docs/design.md``)."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state_dict.items()}
    if PREDICTIONS_KEY in tensors:
        raise ConfigError(f"state dict of {arch} has a tensor named {PREDICTIONS_KEY!r}")
    tensors[PREDICTIONS_KEY] = torch.as_tensor(predictions).detach().cpu().to(torch.int64)
    prov = provenance()
    metadata = {
        "nobarriers_format": MINIMUM_FORMAT,
        "arch": str(arch),
        "dataset": str(dataset),
        "seed": str(int(seed)),
        "recipe": json.dumps(recipe, sort_keys=True),
        "metrics": json.dumps(metrics, sort_keys=True),
        "history": json.dumps(history),
        "config_hash": str(config_hash),
        "version": str(prov["version"]),
        "git_revision": str(prov["git_revision"]),
        "torch": str(prov["torch"]),
    }
    if num_classes is not None:
        metadata["num_classes"] = str(int(num_classes))
    if input_shape is not None:
        metadata["input_shape"] = json.dumps([int(s) for s in input_shape])
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


_JSON_FIELDS = ("recipe", "metrics", "history", "input_shape")


@dataclass
class Minimum:
    """A trained minimum read from its ``minimum/1`` file."""

    state_dict: dict
    metadata: dict  # strings, with the JSON fields (recipe, metrics, history, ...) decoded
    predictions: torch.Tensor  # int64 test-set predictions (exact BatchNorm)
    arch: str
    dataset: str
    seed: int
    metrics: dict
    history: list = field(default_factory=list)
    path: str = ""

    @property
    def model_state(self) -> dict:  # name used in docs/design.md
        return self.state_dict

    @property
    def config_hash(self) -> str:
        return self.metadata.get("config_hash", "")

    def build(self, num_classes: int | None = None, input_shape: tuple | None = None):
        """The model with these weights (and BatchNorm statistics) loaded, in eval mode."""
        from .models import build_model

        if num_classes is None:
            if "num_classes" not in self.metadata:
                raise ConfigError(f"minimum {self.path}: pass num_classes (not stored)")
            num_classes = int(self.metadata["num_classes"])
        if input_shape is None:
            if "input_shape" not in self.metadata:
                raise ConfigError(f"minimum {self.path}: pass input_shape (not stored)")
            input_shape = tuple(self.metadata["input_shape"])
        model = build_model(self.arch, int(num_classes), tuple(input_shape))
        try:
            model.load_state_dict(self.state_dict)
        except RuntimeError as exc:
            raise FileFormatError(
                f"minimum {self.path}: weights do not fit {self.arch} with {num_classes} classes "
                f"and input {tuple(input_shape)}: {exc}"
            ) from exc
        model.eval()
        return model


def load_minimum(
    path,
    expect_arch: str | None = None,
    expect_dataset: str | None = None,
    expect_config_hash: str | None = None,
) -> Minimum:
    """Read a minimum file; refuse anything that is not a complete ``minimum/1`` file of the
    expected arch / dataset / config hash with :class:`FileFormatError` naming the file."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"minimum {path}: file not found")
    try:
        tensors = {}
        with safe_open(str(path), framework="pt", device="cpu") as f:
            raw = dict(f.metadata() or {})
            for key in f.keys():
                tensors[key] = f.get_tensor(key)
    except Exception as exc:  # noqa: BLE001 - safetensors raises several kinds
        raise FileFormatError(
            f"minimum {path}: not a readable safetensors file (corrupt or truncated?): {exc}"
        ) from exc
    fmt = raw.get("nobarriers_format")
    if fmt != MINIMUM_FORMAT:
        raise FileFormatError(
            f"minimum {path}: format marker nobarriers_format={fmt!r}, expected {MINIMUM_FORMAT!r}"
        )
    for key in ("arch", "dataset", "seed", "metrics", "history"):
        if key not in raw:
            raise FileFormatError(f"minimum {path}: metadata field {key!r} is missing")
    if PREDICTIONS_KEY not in tensors:
        raise FileFormatError(f"minimum {path}: tensor {PREDICTIONS_KEY!r} is missing")
    for name, want in (
        ("arch", expect_arch),
        ("dataset", expect_dataset),
        ("config_hash", expect_config_hash),
    ):
        if want is not None and raw.get(name, "") != str(want):
            raise FileFormatError(
                f"minimum {path}: {name} is {raw.get(name, '')!r}, expected {str(want)!r}"
            )
    metadata: dict = dict(raw)
    for key in _JSON_FIELDS:
        if key in raw:
            try:
                metadata[key] = json.loads(raw[key])
            except json.JSONDecodeError as exc:
                raise FileFormatError(
                    f"minimum {path}: metadata {key!r} is not JSON: {exc}"
                ) from exc
    try:
        seed = int(raw["seed"])
    except ValueError as exc:
        raise FileFormatError(f"minimum {path}: seed {raw['seed']!r} is not an integer") from exc
    predictions = tensors.pop(PREDICTIONS_KEY)
    return Minimum(
        state_dict=tensors,
        metadata=metadata,
        predictions=predictions,
        arch=raw["arch"],
        dataset=raw["dataset"],
        seed=seed,
        metrics=metadata["metrics"],
        history=metadata["history"],
        path=str(path),
    )
