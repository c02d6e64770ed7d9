import csv

import numpy as np
import pytest
import torch

from nobarriers.core.errors import ConfigError, NoBarriersError
from nobarriers.engine.overlap import (
    flag_pairs,
    misclassification_overlap,
    overlap_matrix,
    read_overlap_csv,
    write_matrix_csv,
    write_overlap_csv,
)

LABELS = np.zeros(10, dtype=np.int64)


def preds_wrong_at(indices):
    p = np.zeros(10, dtype=np.int64)
    p[list(indices)] = 1
    return p


@pytest.fixture
def predictions():
    # W_1 = {0,1,2,3}, W_2 = {2,3,4}, W_3 = {0,1,2,3,5}, W_4 = {} (no errors)
    return {
        1: preds_wrong_at([0, 1, 2, 3]),
        2: preds_wrong_at([2, 3, 4]),
        3: preds_wrong_at([0, 1, 2, 3, 5]),
        4: preds_wrong_at([]),
    }


def test_pair_overlap_hand_computed(predictions):
    r = misclassification_overlap(predictions[1], predictions[2], LABELS)
    assert (r["n_a"], r["n_b"], r["n_both"]) == (4, 3, 2)
    assert r["jaccard"] == pytest.approx(2 / 5)
    assert r["smaller"] == pytest.approx(2 / 3)
    r = misclassification_overlap(predictions[1], predictions[3], LABELS)
    assert r["jaccard"] == pytest.approx(4 / 5)
    assert r["smaller"] == pytest.approx(1.0)
    # torch tensors work too
    r2 = misclassification_overlap(
        torch.as_tensor(predictions[1]), torch.as_tensor(predictions[3]), torch.as_tensor(LABELS)
    )
    assert r2 == r


def test_zero_errors_defined_as_zero(predictions):
    r = misclassification_overlap(predictions[1], predictions[4], LABELS)
    assert r == {"jaccard": 0.0, "smaller": 0.0, "n_a": 4, "n_b": 0, "n_both": 0}
    r = misclassification_overlap(predictions[4], predictions[4], LABELS)
    assert r["jaccard"] == 0.0 and r["smaller"] == 0.0


def test_shape_mismatch_refused():
    with pytest.raises(ConfigError, match="labels"):
        misclassification_overlap(np.zeros(3), np.zeros(3), np.zeros(4))


def test_matrix_symmetric_and_consistent(predictions):
    seeds, jac, sm = overlap_matrix(predictions, LABELS)
    assert seeds == [1, 2, 3, 4]
    np.testing.assert_allclose(jac, jac.T)
    np.testing.assert_allclose(sm, sm.T)
    assert np.all(sm >= jac - 1e-12)
    np.testing.assert_allclose(np.diag(jac), [1, 1, 1, 0])
    for i, a in enumerate(seeds):
        for j, b in enumerate(seeds):
            if i != j:
                r = misclassification_overlap(predictions[a], predictions[b], LABELS)
                assert jac[i, j] == pytest.approx(r["jaccard"])
                assert sm[i, j] == pytest.approx(r["smaller"])


def test_flags_above_threshold(predictions):
    flagged = flag_pairs(predictions, LABELS)  # smaller, 0.7
    assert [(r["seed_a"], r["seed_b"]) for r in flagged] == [(1, 3)]
    flagged = flag_pairs(predictions, LABELS, threshold=0.5, metric="smaller")
    assert {(r["seed_a"], r["seed_b"]) for r in flagged} == {(1, 3), (1, 2), (2, 3)}
    flagged = flag_pairs(predictions, LABELS, threshold=0.7, metric="jaccard")
    assert [(r["seed_a"], r["seed_b"]) for r in flagged] == [(1, 3)]
    assert flag_pairs(predictions, LABELS, threshold=0.8, metric="jaccard") == []
    with pytest.raises(ConfigError, match="metric"):
        flag_pairs(predictions, LABELS, metric="dice")


def test_csv_files(tmp_path, predictions):
    long_csv = tmp_path / "overlap.csv"
    matrix_csv = tmp_path / "matrix.csv"
    write_overlap_csv(long_csv, predictions, LABELS)
    seeds, _, sm = overlap_matrix(predictions, LABELS)
    write_matrix_csv(matrix_csv, seeds, sm)
    with open(long_csv) as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6
    assert list(rows[0]) == [
        "seed_a", "seed_b", "n_a", "n_b", "n_both", "jaccard", "smaller", "above_threshold",
    ]  # fmt: skip
    row13 = next(r for r in rows if (r["seed_a"], r["seed_b"]) == ("1", "3"))
    assert row13["above_threshold"] == "true" and float(row13["smaller"]) == 1.0
    assert sum(r["above_threshold"] == "true" for r in rows) == 1
    typed = read_overlap_csv(long_csv)
    assert [r["above_threshold"] for r in typed].count(True) == 1
    assert typed[0]["seed_a"] == 1 and isinstance(typed[0]["n_both"], int)
    with open(matrix_csv) as fh:
        mat = list(csv.reader(fh))
    assert mat[0] == ["seed", "1", "2", "3", "4"] and len(mat) == 5
    assert float(mat[1][3]) == pytest.approx(1.0)


def test_overlap_stage_from_minimum_files(tmp_path, predictions, monkeypatch):
    from nobarriers.datasets import Dataset
    from nobarriers.datasets.builtin.digits import DIGITS_RECIPE
    from nobarriers.formats.minimum import write_minimum
    from nobarriers.settings.config import stage_hash
    from nobarriers.stages import overlap as stage

    row = {"dataset": "digits", "arch": "mlp-1", "recipe": DIGITS_RECIPE}
    labels = torch.as_tensor(LABELS)
    data = Dataset("digits", 2, (1,), labels[:, None].float(), labels, labels[:, None].float(),
                   labels, "none")  # fmt: skip
    monkeypatch.setattr(stage.JobRuntime, "dataset", lambda self, name, device="cpu": data)
    paths = []
    for seed, pred in predictions.items():
        path = tmp_path / f"{seed}.safetensors"
        write_minimum(
            path, {"w": torch.zeros(2)}, torch.as_tensor(pred), arch="mlp-1", dataset="digits",
            seed=seed, recipe=DIGITS_RECIPE, metrics={}, history=[],
            config_hash=stage_hash(row, "minima"),
        )  # fmt: skip
        paths.append(path)
    out = {k: tmp_path / f"o.{k}" for k in ("csv", "mcsv", "png", "pdf")}
    runtime = stage.JobRuntime()
    flagged = stage.overlap_job(
        row, paths, runtime, out["csv"], out["mcsv"], out["png"], out["pdf"], 0.7, "smaller"
    )
    assert [(r["seed_a"], r["seed_b"]) for r in flagged] == [(1, 3)]
    assert out["png"].stat().st_size > 1000 and out["mcsv"].exists()
    assert out["pdf"].read_bytes()[:4] == b"%PDF"
    # minima of another training configuration are refused
    with pytest.raises(NoBarriersError, match="config_hash"):
        stage.overlap_job({**row, "arch": "mlp-2"}, paths, runtime, *out.values(), 0.7, "smaller")
