"""What reruns when files or the code change, on the finished tiny run (``tiny_run`` in
conftest.py, shared with test_workflow.py: a file of its own so that another xdist worker runs
these while test_workflow.py's worker reads the run). The tests that delete or damage files work
on a copy; the bumped code version is asked with dry runs.
"""

from __future__ import annotations

import os

import pytest


@pytest.mark.slow
def test_a_bumped_algorithm_version_reruns_that_stage_and_what_follows(tiny_run, tmp_path):
    """nobarriers.settings.versions: a code change that changes what a stage computes reruns
    exactly that stage's jobs and what depends on them."""

    def bumped(stage):
        folder = tmp_path / f"bump-{stage}"
        folder.mkdir()
        (folder / "sitecustomize.py").write_text(
            f"import nobarriers.settings.versions as v\nv.ALGORITHM_VERSIONS[{stage!r}] += 1\n"
        )
        path = os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])
        return tiny_run.planned(env={"PYTHONPATH": path})

    evaluation = bumped("evaluation")
    assert evaluation["evaluate_path"] == 3 and evaluation["table_b1"] == 1, evaluation
    assert evaluation["slice_figure"] == 1 and evaluation["row_figures"] == 1, evaluation
    assert not {"train_minimum", "autoneb_path", "aligned_path", "select_pairs", "landscape",
                "prepare_dataset"} & set(evaluation), evaluation  # fmt: skip
    report_only = bumped("report")
    assert report_only["table_row"] == 1 and "evaluate_path" not in report_only, report_only
    path_stage = bumped("paths")
    assert path_stage["select_pairs"] >= 1 and path_stage["landscape"] == 1, path_stage
    assert not {"train_minimum", "prepare_dataset"} & set(path_stage), path_stage
    data_stage = bumped("data")
    assert data_stage["prepare_dataset"] == 1 and data_stage["train_minimum"] == 3, data_stage


@pytest.mark.slow
def test_a_deleted_file_reruns_its_job_and_what_depends_on_it(tiny_run, tmp_path):
    """A deleted file is an input Snakemake sees: a plain run plans its job and what depends on
    it, nothing else (the MST edge's evaluation and the overlap table here)."""
    run = tiny_run.copy(tmp_path / "run")
    a, b = sorted(run.landscape()["mst"][0][:2])
    evaluated = run.row_dir / "evaluated" / f"{a}-{b}.h5"
    overlap = run.row_dir / "overlap" / "overlap.csv"
    assert run.planned() == {}, "a copy of a finished run is a finished run"
    for f in (evaluated, overlap):
        f.rename(f.with_suffix(".moved"))
    only = run.planned()
    assert only["evaluate_path"] == 1 and only["overlap"] == 1 and only["table_b1"] == 1, only
    assert not {"train_minimum", "autoneb_path", "select_pairs", "landscape"} & set(only), only
    for f in (evaluated, overlap):
        f.with_suffix(".moved").rename(f)
    assert run.planned() == {}


@pytest.mark.slow
def test_a_damaged_minimum_is_refused_and_deleted_files_come_back(tiny_run, tmp_path):
    """A minimum damaged in place (header intact, 224 bytes of its weights overwritten) is
    refused by the first job that reads its tensors, with the file named in that job's log;
    nothing downstream is rewritten from it. Deleted files of every kind come back when Snakemake
    is asked for them, holding what they held: the retrained minimum's tensors, the path's and
    the evaluation's curves, the MST and the overlap table are the finished run's. (Asked for
    the deleted files, not the table: the rerun is 9 jobs instead of the whole row's 30; the
    planning of a plain rerun is test_a_deleted_file_reruns_its_job_and_what_depends_on_it's.)"""
    import torch

    from nobarriers.formats.minimum import load_minimum
    from nobarriers.formats.pathfile import read_evaluation, read_path

    run = tiny_run.copy(tmp_path / "run")
    results = run.results
    table_bytes = (results / "table_b1.csv").read_bytes()
    damaged = run.minima()[1]
    with open(damaged, "r+b") as f:
        f.seek(8 + int.from_bytes(f.read(8), "little") + 64)
        f.write(bytes(range(224)))
    assert run.run(3, check=False).returncode != 0
    refusals = [p.read_text() for p in (results / "logs").rglob("*.log")]
    # the job runs in the working directory: its log names the file as the rule gave it
    name = damaged.relative_to(run.workdir)
    refusals = [text for text in refusals if f"failed: minimum {name}: checksum" in text]
    assert refusals, "the refusal must be in the failed job's log"
    first_error = next(line for line in refusals[0].splitlines() if " ERROR " in line)
    assert "delete it and rerun the workflow" in first_error, first_error
    assert "Traceback" in refusals[0] and "weights_only" not in refusals[0]
    assert (results / "table_b1.csv").read_bytes() == table_bytes

    rounds = run.rounds()
    a, b = sorted(run.landscape()["mst"][0][:2])
    deleted = [damaged, run.row_dir / "evaluated" / f"{a}-{b}.h5", run.paths()[0],
               rounds / "1.json", rounds / "landscape.json",
               run.row_dir / "overlap" / "overlap.csv"]  # fmt: skip
    for f in deleted:
        f.unlink(missing_ok=True)  # the failed path jobs' outputs are gone already
    run.run(3, *(f.relative_to(run.workdir) for f in deleted))  # the targets
    for f in deleted:
        assert f.is_file(), f
    finished = {f: tiny_run.workdir / f.relative_to(run.workdir) for f in deleted}
    for f, before in finished.items():
        if f.suffix == ".safetensors":
            old, new = load_minimum(before).state_dict, load_minimum(f).state_dict
            assert all(torch.equal(old[k], new[k]) for k in old), f
        elif f.parent.name == "paths":
            assert read_path(f).saddle_loss == read_path(before).saddle_loss, f
        elif f.parent.name == "evaluated":
            assert read_evaluation(f).saddles == read_evaluation(before).saddles, f
        else:
            assert f.read_bytes() == before.read_bytes(), f
