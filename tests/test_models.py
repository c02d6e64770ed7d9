"""Model catalogue: the registry of families, exact parameter counts, forward/backward of every
paper architecture, name errors, a family added as one file."""

import subprocess
import sys
import textwrap

import pytest
import torch

from nobarriers import models
from nobarriers.core.errors import ConfigError
from nobarriers.models import build_model, describe, parameter_count

MODEL_NAMES = models.paper_names()
PATTERNS = models.patterns()

torch.set_num_threads(1)

CIFAR = (3, 32, 32)

# Parameter counts on CIFAR10 / CIFAR100 (3×32×32). CNN and ResNet-20 counts are the measured
# values of docs (reference-pitfalls.md); DenseNet counts are those of Huang et al.'s standard
# CIFAR definition without conv biases (paper: 1.0M and 0.8M).
COUNTS = {
    "cnn-12": (790_706, 813_836),
    "cnn-24": (1_578_074, 1_601_204),
    "cnn-36": (2_365_442, 2_388_572),
    "cnn-48": (3_152_810, 3_175_940),
    "cnn-96": (6_302_282, 6_325_412),
    "cnn-48x2": (851_258, 874_388),
    "cnn-48x3": (319_178, 342_308),
    "resnet-8": (75_290, 81_140),
    "resnet-20": (269_722, 275_572),
    "resnet-32": (464_154, 470_004),
    "resnet-44": (658_586, 664_436),
    "resnet-56": (853_018, 858_868),
    "densenet-40-12": (1_019_722, 1_060_132),
    "densenet-bc-100-12": (769_162, 800_032),
    "resnet-20-proj": (272_474, 278_324),
}


def test_registry_lists_the_paper_architectures():
    assert len(MODEL_NAMES) == 14
    assert set(MODEL_NAMES) <= set(COUNTS)


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_parameter_counts(name):
    c10, c100 = COUNTS[name]
    assert parameter_count(build_model(name, 10, CIFAR)) == c10
    assert parameter_count(build_model(name, 100, CIFAR)) == c100


def test_projection_shortcut_adds_exactly_the_two_1x1_convs_with_bn():
    # stage 2: 16*32 weights + 2*32 BN; stage 3: 32*64 + 2*64
    extra = 16 * 32 + 64 + 32 * 64 + 128
    for depth in (8, 20, 56):
        a = parameter_count(build_model(f"resnet-{depth}", 10, CIFAR))
        p = parameter_count(build_model(f"resnet-{depth}-proj", 10, CIFAR))
        assert p - a == extra


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_forward_backward_cifar(name):
    torch.manual_seed(0)
    model = build_model(name, 10, CIFAR)
    model.train()
    x = torch.randn(2, *CIFAR)
    out = model(x)
    assert out.shape == (2, 10)
    loss = torch.nn.functional.cross_entropy(out, torch.tensor([1, 7]))
    loss.backward()
    assert torch.isfinite(loss)
    for p in model.parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all()
    model.eval()
    with torch.no_grad():
        assert model(x).shape == (2, 10)


@pytest.mark.parametrize(
    "name",
    ["cnn-16", "cnn-8x2", "cnn-8x3", "mlp-32", "mlp-32x3", "resnet-8", "resnet-8-proj",
     "densenet-16-4", "densenet-bc-16-4"],
)  # fmt: skip
@pytest.mark.parametrize("shape", [(1, 8, 8), (64,)])
def test_digits_shapes(name, shape):
    torch.manual_seed(0)
    model = build_model(name, 10, shape)
    out = model(torch.randn(2, *shape))
    assert out.shape == (2, 10)
    out.sum().backward()


def test_flat_and_image_digits_models_agree():
    torch.manual_seed(0)
    a = build_model("cnn-8x2", 10, (1, 8, 8)).eval()
    b = build_model("cnn-8x2", 10, (64,)).eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(3, 1, 8, 8)
    torch.testing.assert_close(a(x), b(x.reshape(3, 64)))


def test_cnn_structure_matches_the_paper_recipe():
    model = build_model("cnn-48x2", 10, CIFAR)
    kinds = [type(m).__name__ for m in model.features]
    assert kinds == ["Conv2d", "MaxPool2d", "BatchNorm2d", "ReLU"] * 2
    conv = model.features[0]
    assert conv.kernel_size == (5, 5) and conv.padding == (2, 2) and conv.bias is not None
    head = [type(m).__name__ for m in model.classifier]
    assert head == ["Flatten", "Linear", "BatchNorm1d", "ReLU", "Linear"]
    assert model.classifier[1].out_features == 256


def test_option_a_shortcut_is_parameter_free_and_pads_zeros():
    model = build_model("resnet-8", 10, CIFAR)
    shortcut = model.blocks[1].shortcut
    assert sum(p.numel() for p in shortcut.parameters()) == 0
    x = torch.randn(2, 16, 32, 32)
    y = shortcut(x)
    assert y.shape == (2, 32, 16, 16)
    torch.testing.assert_close(y[:, :16], x[:, :, ::2, ::2])
    assert (y[:, 16:] == 0).all()


def test_seeded_construction_is_reproducible():
    torch.manual_seed(3)
    a = torch.nn.utils.parameters_to_vector(build_model("resnet-8", 10, CIFAR).parameters())
    torch.manual_seed(3)
    b = torch.nn.utils.parameters_to_vector(build_model("resnet-8", 10, CIFAR).parameters())
    assert torch.equal(a, b)


def test_describe():
    assert describe("CNN-48x2")["label"] == "CNN-48×2"
    assert describe("resnet-20-proj")["shortcut"] == "projection"
    info = describe("densenet-bc-100-12")
    assert (info["family"], info["depth"], info["growth"], info["bc"]) == (
        "densenet",
        100,
        12,
        True,
    )
    assert info["label"] == "DenseNet-100-12-BC"


@pytest.mark.parametrize("name", ["vgg-16", "cnn", "cnn-12x", "resnet-abc", "", "densenet-40"])
def test_unknown_names(name):
    with pytest.raises(ConfigError) as err:
        build_model(name, 10, CIFAR)
    message = str(err.value)
    assert "cnn-48x3" in message and "densenet-bc-100-12" in message
    assert all(p in message for p in PATTERNS)


@pytest.mark.parametrize(
    "name, shape",
    [("resnet-21", CIFAR), ("densenet-41-12", CIFAR), ("densenet-bc-42-12", CIFAR),
     ("cnn-48x4", (1, 8, 8)), ("cnn-0", CIFAR), ("resnet-20", (63,))],
)  # fmt: skip
def test_invalid_configurations(name, shape):
    with pytest.raises(ConfigError, match=name.split("-")[0]):
        build_model(name, 10, shape)


def test_the_registry_is_the_families_folder():
    assert set(models.families()) == {"cnn", "resnet", "densenet", "mlp"}
    assert describe("mlp-8x2")["family"] == "mlp" and describe("cnn-4")["label"] == "CNN-4"


def test_a_family_is_one_file(tmp_path, monkeypatch):
    """A family module dropped into the families package is found by name, builds, labels its
    rows, brings its recipe and groups its resources -- with no edit anywhere else."""
    from nobarriers.report.labels import arch_family, arch_label
    from nobarriers.settings import recipes
    from nobarriers.settings.config import WorkflowConfig

    (tmp_path / "wide.py").write_text(
        textwrap.dedent("""
        from nobarriers.models.family import HE_ET_AL_RECIPE, ModelFamily

        def build(params, num_classes, input_shape):
            import math
            from torch import nn
            features = math.prod(input_shape)
            return nn.Sequential(nn.Flatten(), nn.Linear(features, params["width"]), nn.ReLU(),
                                 nn.Linear(params["width"], num_classes))

        FAMILY = ModelFamily(
            name="wide", patterns=("wide-{W}",), regex=r"wide-(\\d+)",
            parse=lambda m: {"width": int(m[1])}, label=lambda p: f"Wide-{p['width']}",
            summary=lambda p: "one wide layer", recipe={**HE_ET_AL_RECIPE, "epochs": 7},
            build=build)
    """)
    )
    monkeypatch.setattr(models.families_package, "__path__", [*models.families_package.__path__,
                                                             str(tmp_path)])  # fmt: skip
    models.families.cache_clear()
    try:
        assert "wide-{W}" in models.patterns()
        net = build_model("wide-5", 3, (2, 2))
        assert (
            net(torch.zeros(4, 2, 2)).shape == (4, 3)
            and parameter_count(net) == 4 * 5 + 5 + 5 * 3 + 3
        )
        assert arch_label("wide-5") == "Wide-5" and arch_family("wide-5") == "wide"
        assert recipes.built_in_recipes()["wide"]["epochs"] == 7
        settings = WorkflowConfig({"rows": [{"dataset": "cifar10", "arch": "wide-5"}],
                                   "resources": {"families": {"wide": {"autoneb_path": {
                                       "runtime": 33}}}}})  # fmt: skip
        assert settings.row("cifar10", "wide-5")["recipe"]["epochs"] == 7
        assert settings.job_resources("cifar10", "wide-5", "autoneb_path")["runtime"] == 33
    finally:
        models.families.cache_clear()


def test_checking_names_imports_no_torch():
    code = (
        "import sys; from nobarriers import models; models.describe('resnet-20'); "
        "models.check_model_name('densenet-bc-100-12'); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
