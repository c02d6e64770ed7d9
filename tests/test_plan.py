"""nobarriers plan: the jobs and the cost of a configuration before it is submitted."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nobarriers.cli import main
from nobarriers.core.errors import ConfigError
from nobarriers.engine.landscape import next_pairs
from nobarriers.nn.flops import forward_macs
from nobarriers.settings.config import WorkflowConfig
from nobarriers.stages.plan import ASSUMED_TFLOPS, make_plan, row_plan, simulated_rounds


def test_forward_macs_counts_convolutions_and_linear_layers_by_hand():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                        nn.Linear(4 * 8 * 8, 10))  # fmt: skip
    conv = 4 * 8 * 8 * (3 * 3 * 3)  # outputs x (in channels x kernel)
    assert forward_macs(net, (3, 8, 8)) == conv + 256 * 10
    grouped = nn.Conv2d(4, 4, 3, groups=2, padding=1)
    assert forward_macs(grouped, (4, 5, 5)) == 4 * 5 * 5 * (2 * 9)
    assert next(net.parameters()).device.type == "cpu"  # counted on a meta copy
    with torch.device("meta"):
        from nobarriers.models import build_model

        resnet = build_model("resnet-20", 10, (3, 32, 32))
    assert 40e6 < forward_macs(resnet, (3, 32, 32)) < 42e6  # ResNet-20: ~41 M MACs


def test_the_paper_plan_has_its_28_rows_and_the_whole_star_in_the_first_round():
    settings = WorkflowConfig.load("config/paper.yaml")
    assert settings.values["exploration"]["pairs_per_round"] is None
    plan = make_plan(settings, gpus=8)
    assert len(plan.rows) == 28
    for row in plan.rows:
        assert row.jobs["train_minimum"] == (10, 10) and row.jobs["autoneb_path"] == (9, 45)
        assert row.rounds[0] == 1  # the star of 9 at once
        assert row.flops["autoneb_path"] > row.flops["evaluate_path"] > 0
    loss = {k: float(k) for k in range(10)}
    assert len(next_pairs(loss, {}, settings.values["exploration"]["pairs_per_round"])) == 9
    # ResNet-56 costs more than ResNet-20 per path, DenseNet most; the totals add up
    by_arch = {r.arch: r for r in plan.rows if r.dataset == "cifar10"}
    assert by_arch["resnet-56"].total_flops > by_arch["resnet-20"].total_flops
    assert plan.total_gpu_hours == pytest.approx(sum(plan.gpu_hours(r.total_flops)
                                                     for r in plan.rows))  # fmt: skip
    faster = make_plan(settings, gpus=8, tflops=4 * ASSUMED_TFLOPS)
    assert faster.total_gpu_hours == pytest.approx(plan.total_gpu_hours / 4)
    assert make_plan(settings, gpus=16).wall_hours() <= plan.wall_hours()


def test_simulated_rounds_respect_the_budget_and_the_rounds_width():
    exploration = {"max_paths": 20, "pairs_per_round": None, "similar_saddles_rtol": None,
                   "similar_saddles_scale": "loss"}  # fmt: skip
    for model in ("flat", "independent", "hierarchical"):
        runs = simulated_rounds(10, exploration, model, trials=5)
        assert all(paths == 20 and 2 <= rounds <= 12 for rounds, paths in runs), runs
    narrow = simulated_rounds(10, {**exploration, "pairs_per_round": 1}, "flat", trials=3)
    assert all(rounds == 20 for rounds, _ in narrow)  # one path per round


def test_bad_plans_fail_like_the_workflow(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("rows: [{dataset: cifar10, arch: resnet-21}]\n")
    assert main(["plan", "--configfile", str(bad)]) == 2
    assert "rows[0].arch" in capsys.readouterr().err
    assert main(["plan", "--configfile", "config/paper.yaml", "--tflops", "0"]) == 2
    assert "a throughput must be above 0" in capsys.readouterr().err
    settings = WorkflowConfig({"rows": [{"dataset": "digits", "arch": "mlp-4"}]})
    with pytest.raises(ConfigError, match="at least one GPU"):
        make_plan(settings, gpus=0)
    assert row_plan(settings, "digits", "mlp-4").jobs["train_minimum"] == (10, 10)
