import dataclasses
import json
import logging

import pytest
import torch
from safetensors.torch import save_file

from nobarriers.core.errors import ConfigError, DivergenceError, FileFormatError
from nobarriers.datasets import load_dataset
from nobarriers.datasets.builtin.digits import DIGITS_RECIPE
from nobarriers.engine.train import train_minimum
from nobarriers.formats.minimum import load_minimum
from nobarriers.report.learning_curves import crossing_epoch
from nobarriers.settings.recipes import (
    OPTIONAL_RECIPE_KEYS,
    RECIPE_KEYS,
    built_in_recipes,
    lr_at_epoch,
    recipe_for,
    validate_recipe,
)

PAPER_RECIPES = {family: built_in_recipes()[family] for family in ("cnn", "resnet", "densenet")}

torch.set_num_threads(1)

SHORT = {**DIGITS_RECIPE, "epochs": 5, "lr_milestones": [0.4, 0.8]}


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def digits_aug(digits):
    # exercises the augmentation generator in the resume test (crop + flip work on 8x8 too)
    return dataclasses.replace(digits, augment="crop_flip")


class ListHandler(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.fixture(scope="module")
def trained(digits, tmp_path_factory):
    """The full digits recipe on mlp-32: one minimum shared by several tests."""
    out = tmp_path_factory.mktemp("min") / "0.safetensors"
    ckpt = out.with_suffix(".ckpt")
    handler = ListHandler()
    logger = logging.getLogger("test_train.full")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    metrics = train_minimum(
        "mlp-32",
        digits,
        recipe_for("mlp-32", dataset="digits"),
        0,
        out,
        ckpt,
        config_hash="abc",
        log=logger,
    )
    return out, ckpt, metrics, handler.lines


def tensors_of(path):
    m = load_minimum(path)
    return m.state_dict, m.predictions, m.history, m.metrics


def assert_same_minimum(path_a, path_b):
    sa, pa, ha, ma = tensors_of(path_a)
    sb, pb, hb, mb = tensors_of(path_b)
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    assert torch.equal(pa, pb)
    assert ha == hb
    assert ma == mb


# ------------------------------------------------------------------------------------ recipes


def test_paper_recipes():
    for family, recipe in PAPER_RECIPES.items():
        checked = validate_recipe(recipe)
        assert {k: checked[k] for k in recipe} == recipe, family
        assert checked["channels_last"] is False and checked["autocast_bf16"] is False
        assert recipe["lr"] == 0.1 and recipe["momentum"] == 0.9
        assert recipe["weight_decay"] == 1e-4 and recipe["lr_milestones"] == [0.5, 0.75]
        assert recipe["lr_gamma"] == 0.1 and recipe["augment"]
    assert PAPER_RECIPES["cnn"]["batch_size"] == PAPER_RECIPES["resnet"]["batch_size"] == 128
    assert PAPER_RECIPES["cnn"]["epochs"] == PAPER_RECIPES["resnet"]["epochs"] == 136
    dn = PAPER_RECIPES["densenet"]
    assert (dn["batch_size"], dn["epochs"], dn["nesterov"]) == (64, 266, True)
    assert recipe_for("resnet-20") == validate_recipe(PAPER_RECIPES["resnet"])
    assert recipe_for("densenet-bc-100-12") == validate_recipe(PAPER_RECIPES["densenet"])
    assert recipe_for("cnn-48x2") == validate_recipe(PAPER_RECIPES["cnn"])
    digits = validate_recipe(DIGITS_RECIPE)
    assert recipe_for("mlp-32", dataset="digits") == digits == recipe_for("cnn-8", dataset="digits")
    assert recipe_for("mlp-32") == validate_recipe(PAPER_RECIPES["cnn"])  # He et al.'s
    assert recipe_for("resnet-20", overrides={"epochs": 3})["epochs"] == 3
    # step schedule: /10 after 50 % and 75 % of 136 epochs
    r = PAPER_RECIPES["resnet"]
    assert lr_at_epoch(r, 0) == lr_at_epoch(r, 67) == 0.1
    assert lr_at_epoch(r, 68) == pytest.approx(0.01) == lr_at_epoch(r, 101)
    assert lr_at_epoch(r, 102) == pytest.approx(0.001) == lr_at_epoch(r, 135)


@pytest.mark.parametrize(
    "change, key",
    [
        ({"epoch": 3}, "epoch: unknown key; did you mean 'epochs'"),
        ({"lr": -1}, "lr: -1 is less than or equal to the minimum of 0"),
        ({"lr": "fast"}, "lr: 'fast' is not of type 'number'"),
        ({"batch_size": 0}, "batch_size: 0 is less than the minimum of 1"),
        ({"batch_size": 12.5}, "batch_size: 12.5 is not of type 'integer'"),
        ({"momentum": 1.0}, "momentum: 1.0 is greater than or equal to the maximum of 1"),
        ({"nesterov": "maybe"}, "nesterov: 'maybe' is not of type 'boolean'"),
        ({"lr_milestones": [0.5, 1.5]}, "lr_milestones[1]: 1.5 is greater than the maximum"),
        ({"lr_gamma": 0}, "lr_gamma: 0 is less than or equal to the minimum of 0"),
        ({"augment": 1}, "augment: 1 is not of type 'boolean'"),
        ({"nesterov": True, "momentum": 0.0}, "nesterov is true but momentum is 0"),
    ],
)
def test_bad_recipe_names_key(change, key):
    with pytest.raises(ConfigError) as err:
        validate_recipe({**DIGITS_RECIPE, **change})
    assert key in str(err.value)


def test_recipe_missing_key_and_yaml_strings():
    recipe = {k: v for k, v in DIGITS_RECIPE.items() if k != "eval_batch_size"}
    with pytest.raises(ConfigError, match="eval_batch_size"):
        validate_recipe(recipe)
    assert validate_recipe({**DIGITS_RECIPE, "weight_decay": "1e-4"})["weight_decay"] == 1e-4
    assert validate_recipe({**DIGITS_RECIPE, "lr_milestones": [0.5, 1]})["lr_milestones"][-1] == 1
    assert set(RECIPE_KEYS) == set(DIGITS_RECIPE) | set(OPTIONAL_RECIPE_KEYS)


# ----------------------------------------------------------------------------------- training


def test_digits_minimum(trained, digits):
    out, ckpt, metrics, lines = trained
    assert metrics["test_error"] <= 0.05  # >= 95 % test accuracy
    assert not ckpt.exists()  # checkpoint removed after the minimum is written
    m = load_minimum(out, expect_arch="mlp-32", expect_dataset="digits", expect_config_hash="abc")
    assert (m.arch, m.dataset, m.seed) == ("mlp-32", "digits", 0)
    assert m.recipe == recipe_for("mlp-32", dataset="digits") and m.config_hash == "abc"
    assert m.num_classes == 10 and m.input_shape == (1, 8, 8)
    for key in ("version", "git_revision", "torch"):
        assert m.provenance[key]
    assert m.metrics == pytest.approx(metrics)
    epochs = DIGITS_RECIPE["epochs"]
    assert [h["epoch"] for h in m.history] == list(range(1, epochs + 1))
    assert set(m.history[0]) == {
        "epoch",
        "lr",
        "train_loss",
        "train_error",
        "test_loss",
        "test_error",
    }
    assert m.history[0]["lr"] == DIGITS_RECIPE["lr"]
    assert m.history[-1]["lr"] == pytest.approx(DIGITS_RECIPE["lr"] * 0.01)
    assert m.history[-1]["train_loss"] < m.history[0]["train_loss"]
    assert crossing_epoch([m.history], m.history[0]["train_loss"])["epoch"] == 2
    # the stored predictions are the rebuilt model's test predictions
    model = m.build(digits.num_classes, digits.input_shape)
    with torch.no_grad():
        pred = model(digits.x_test).argmax(1)
    assert torch.equal(pred, m.predictions)
    assert m.predictions.dtype == torch.int64 and m.predictions.shape == digits.y_test.shape
    assert float((pred != digits.y_test).float().mean()) == pytest.approx(metrics["test_error"])
    # one progress line per epoch, with ETA
    epoch_lines = [line for line in lines if f"/{epochs} |" in line]
    assert len(epoch_lines) == epochs and all("ETA" in line for line in epoch_lines)


def test_same_seed_same_minimum(digits, tmp_path):
    train_minimum("cnn-4", digits, SHORT, 7, tmp_path / "a.st", tmp_path / "a.ckpt")
    train_minimum("cnn-4", digits, SHORT, 7, tmp_path / "b.st", tmp_path / "b.ckpt")
    assert_same_minimum(tmp_path / "a.st", tmp_path / "b.st")
    train_minimum("cnn-4", digits, SHORT, 8, tmp_path / "c.st", tmp_path / "c.ckpt")
    a, c = load_minimum(tmp_path / "a.st"), load_minimum(tmp_path / "c.st")
    assert any(not torch.equal(a.state_dict[k], c.state_dict[k]) for k in a.state_dict)


class Killed(Exception):
    pass


def kill_after(k):
    def hook(epoch, entry):
        if epoch == k:
            raise Killed(epoch)

    return hook


def test_resume_is_bitwise_identical(digits_aug, tmp_path):
    recipe = {**SHORT, "augment": True}
    full = tmp_path / "full.st"
    train_minimum("cnn-4", digits_aug, recipe, 3, full, tmp_path / "full.ckpt")
    out, ckpt = tmp_path / "resumed.st", tmp_path / "resumed.ckpt"
    with pytest.raises(Killed):
        train_minimum("cnn-4", digits_aug, recipe, 3, out, ckpt, on_epoch_end=kill_after(2))
    assert ckpt.exists() and not out.exists()
    stored = torch.load(ckpt, weights_only=True)
    assert stored["epochs_done"] == 2 and len(stored["history"]) == 2
    train_minimum("cnn-4", digits_aug, recipe, 3, out, ckpt)
    assert not ckpt.exists()
    assert_same_minimum(full, out)


def test_checkpoint_of_other_run_refused(digits, tmp_path):
    out, ckpt = tmp_path / "m.st", tmp_path / "m.ckpt"
    with pytest.raises(Killed):
        train_minimum(
            "mlp-8", digits, SHORT, 1, out, ckpt, config_hash="h1", on_epoch_end=kill_after(1)
        )
    with pytest.raises(ConfigError, match="'seed'") as err:
        train_minimum("mlp-8", digits, SHORT, 2, out, ckpt, config_hash="h1")
    assert str(ckpt) in str(err.value)
    with pytest.raises(ConfigError, match="'recipe'"):
        train_minimum("mlp-8", digits, {**SHORT, "lr": 0.01}, 1, out, ckpt, config_hash="h1")
    with pytest.raises(ConfigError, match="'config_hash'"):
        train_minimum("mlp-8", digits, SHORT, 1, out, ckpt, config_hash="h2")
    with pytest.raises(ConfigError, match="'arch'"):
        train_minimum("mlp-9", digits, SHORT, 1, out, ckpt, config_hash="h1")
    ckpt.write_bytes(b"garbage")
    with pytest.raises(FileFormatError, match="m.ckpt"):
        train_minimum("mlp-8", digits, SHORT, 1, out, ckpt, config_hash="h1")
    assert not out.exists()


def test_divergence_raises_and_writes_nothing(digits, tmp_path):
    out = tmp_path / "nan.st"
    with pytest.raises(DivergenceError, match="epoch 1/"):
        train_minimum("mlp-8", digits, {**SHORT, "lr": 1e6}, 0, out, tmp_path / "nan.ckpt")
    assert not out.exists()


# ------------------------------------------------------------------------------ minimum files


def test_load_minimum_refuses_bad_files(trained, tmp_path):
    out = trained[0]
    data = out.read_bytes()
    with pytest.raises(FileFormatError, match="expected 'cnn-12'"):
        load_minimum(out, expect_arch="cnn-12")
    with pytest.raises(FileFormatError, match="dataset"):
        load_minimum(out, expect_dataset="cifar10")
    with pytest.raises(FileFormatError, match="config_hash"):
        load_minimum(out, expect_config_hash="other")
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(FileFormatError, match="truncated.safetensors"):
        load_minimum(truncated)
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x00\x01not a safetensors file at all" * 10)
    with pytest.raises(FileFormatError, match="corrupt.safetensors"):
        load_minimum(corrupt)
    unmarked = tmp_path / "unmarked.safetensors"
    save_file({"w": torch.zeros(2)}, str(unmarked), metadata={"arch": "mlp-32"})
    with pytest.raises(FileFormatError, match="not a minimum/2 file"):
        load_minimum(unmarked)
    with pytest.raises(FileFormatError, match="not found"):
        load_minimum(tmp_path / "missing.safetensors")
    # metadata round trip
    history = load_minimum(out).history
    assert json.loads(json.dumps(history)) == history


def test_learning_curve_is_measured_like_the_reported_numbers(digits, tmp_path):
    # a BatchNorm net whose running statistics lag behind its weights: the curve entries must be
    # the exact-BN numbers (like Min and Sadd), so that the Epoch column compares like with like
    from nobarriers.engine.evaluate import evaluate_point
    from nobarriers.models import build_model
    from nobarriers.nn.points import evaluate_model, point_of

    out, ckpt = tmp_path / "m.st", tmp_path / "m.ckpt"
    seen = []

    def measure(epoch, entry):
        model = build_model("cnn-4", digits.num_classes, digits.input_shape)
        model.load_state_dict(torch.load(ckpt, weights_only=True)["model"])
        running = evaluate_model(model, digits.x_train, digits.y_train, 512)["loss"]
        exact = evaluate_point(model, point_of(model), digits, 512)["train_loss"]
        seen.append((entry["train_loss"], running, exact))

    recipe = {**SHORT, "lr": 0.2}
    metrics = train_minimum("cnn-4", digits, recipe, 5, out, ckpt, on_epoch_end=measure)
    for stored, _, exact in seen:
        assert stored == pytest.approx(exact, rel=1e-5)
    assert max(abs(r - e) / e for _, r, e in seen) > 0.01  # the two statistics do differ here
    history = load_minimum(out).history
    assert history[-1]["train_loss"] == metrics["train_loss"]  # the last entry is the minimum
    # the crossing of a level between the two curves follows the exact one
    k = max(range(len(seen)), key=lambda i: abs(seen[i][1] - seen[i][2]))
    level = (seen[k][1] + seen[k][2]) / 2
    exact_curve = [{"epoch": i + 1, "train_loss": e} for i, (_, _, e) in enumerate(seen)]
    assert (
        crossing_epoch([history], level)["epoch"] == crossing_epoch([exact_curve], level)["epoch"]
    )


def test_damaged_weights_are_refused_with_the_file_named(trained, tmp_path):
    # 224 bytes overwritten inside the weight data, the header intact: the damage seen in the
    # field (Sadd 1.8e19 in a table) must stop the first job that reads the file
    from safetensors import safe_open

    out = tmp_path / "damaged.safetensors"
    data = bytearray(trained[0].read_bytes())
    header = 8 + int.from_bytes(data[:8], "little")
    with safe_open(str(trained[0]), framework="pt") as f:
        assert "net.1.weight" in f.keys()
    offset = header + 512
    data[offset : offset + 224] = bytes((b + 7) % 256 for b in data[offset : offset + 224])
    out.write_bytes(bytes(data))
    with pytest.raises(FileFormatError) as err:
        load_minimum(out)
    assert str(out) in str(err.value) and "checksum mismatch" in str(err.value)
    assert "delete it" in str(err.value)


def test_minimum_without_batchnorm_statistics_is_refused(digits, tmp_path):
    from nobarriers.formats.minimum import write_minimum
    from nobarriers.models import build_model

    model = build_model("cnn-4", 10, (1, 8, 8))
    weights = {k: v for k, v in model.state_dict().items() if "running" not in k
               and "num_batches" not in k}  # fmt: skip
    path = tmp_path / "nobn.safetensors"
    write_minimum(path, weights, torch.zeros(3, dtype=torch.int64), arch="cnn-4",
                  dataset="digits", seed=0, recipe={}, metrics={}, history=[],
                  num_classes=10, input_shape=(1, 8, 8))  # fmt: skip
    with pytest.raises(FileFormatError) as err:
        load_minimum(path)
    assert str(path) in str(err.value) and "no BatchNorm statistics" in str(err.value)


def test_identical_training_runs_write_identical_bytes(digits, tmp_path):
    a, b = tmp_path / "a.st", tmp_path / "b.st"
    train_minimum("mlp-8", digits, SHORT, 4, a, tmp_path / "a.ckpt", config_hash="h")
    train_minimum("mlp-8", digits, SHORT, 4, b, tmp_path / "b.ckpt", config_hash="h")
    assert a.read_bytes() == b.read_bytes()
