"""The ecosystem's conventions: the licence, the citation metadata, the typing marker that ships
with the package, the Snakemake workflow catalog's files, commands in config/ that work as
written."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

from nobarriers.core.version import VERSION
from nobarriers.settings import schema

ROOT = Path(__file__).resolve().parents[1]


def test_the_licence_is_the_mit_licence_pyproject_names():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n") and "Copyright (c) 2026 the nobarriers authors" in text
    assert "Permission is hereby granted, free of charge" in text
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"] == "MIT"


def test_citation_cites_this_version_and_the_paper_it_reproduces():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software"
    assert cff["version"] == VERSION, "CITATION.cff's version must follow core/version.py"
    assert cff["title"].startswith("nobarriers: ") and cff["license"] == "MIT"
    assert cff["message"] and cff["authors"]
    (paper,) = cff["references"]
    assert paper["title"] == "Essentially No Barriers in Neural Network Energy Landscape"
    assert [a["family-names"] for a in paper["authors"]] == [
        "Draxler", "Veschgini", "Salmhofer", "Hamprecht"]  # fmt: skip
    assert (paper["year"], paper["volume"], paper["start"], paper["end"]) == (2018, 80, 1309, 1318)
    assert paper["publisher"]["name"] == "PMLR" and "ICML 2018" in paper["conference"]["name"]


def test_the_typing_marker_ships_with_the_package():
    assert (ROOT / "src" / "nobarriers" / "py.typed").is_file()
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "py.typed" in data["package-data"]["nobarriers"]
    assert data["package-data"]["nobarriers.settings"] == ["*.yaml"]  # the schema still ships


def test_the_workflow_catalog_files_say_how_to_run_and_configure_it():
    usage = yaml.safe_load((ROOT / ".snakemake-workflow-catalog.yml").read_text())["usage"]
    assert usage["software-stack-deployment"]["conda"] is True  # envs/nobarriers.yaml
    assert usage["report"] is True and (ROOT / "report" / "workflow.rst").is_file()
    assert "desc" in usage["mandatory-flags"]
    readme = (ROOT / "config" / "README.md").read_text()
    assert "src/nobarriers/settings/config.schema.yaml" in readme
    for shipped in sorted((ROOT / "config").glob("*.yaml")):  # every file here is described
        assert f"`{shipped.name}`" in readme, shipped.name
    # the main keys are named (every option: the schema, linked above)
    documented = set(re.findall(r"`([a-z0-9_]+)`", readme))
    main = {"rows", "select", "results_dir", "data_dir", "minima_per_arch", "recipes", "autoneb",
            "exploration", "evaluation", "alignment", "datasets", "models", "device", "threads",
            "gpu_jobs", "resources"}  # fmt: skip
    assert main <= set(schema.schema()["properties"])
    assert not main - documented, f"config/README.md does not name {sorted(main - documented)}"


def test_commands_in_config_name_the_slurm_profile_by_its_path():
    """``--profile slurm`` works only after a link into ~/.config/snakemake (docs/cluster.md);
    the commands in config/ use the path from the checkout."""
    for path in sorted((ROOT / "config").iterdir()):
        text = path.read_text()
        assert not re.search(r"--profile slurm\b", text), path.name
    assert (
        "--profile profiles/slurm --configfile config/paper.yaml"
        in (ROOT / "config" / "paper.yaml").read_text()
    )
