"""``nobarriers``: the command-line front door for one-off use, beside the workflow.

* ``nobarriers connect A.safetensors B.safetensors --out path.h5 [--config cfg.yaml]``: AutoNEB
  between two stored minima, exactly as the workflow's path job (same settings, same file);
  interrupted, the same command resumes after the last finished cycle (``<out>.state.pt``).
* ``nobarriers import FILE... --dataset D --arch A --out-dir DIR [--config cfg.yaml]``: minima
  trained elsewhere as minimum files of a row (as the workflow's ``rows[k].minima`` does).
* ``nobarriers inspect FILE...``: what a minimum, path or evaluation file holds -- identity,
  settings, saddle, cycles -- with its checksums verified; ``--hessian``: for a path file also
  the extreme Hessian eigenvalues at its highest point (docs/hessian.md).
* ``nobarriers table RESULTS_DIR``: Table B.1 of a results folder (Markdown, CSV or LaTeX).

Bad input ends with one line naming the file or key and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from .core.errors import ConfigError, FileFormatError, NoBarriersError
from .core.progress import setup_logging
from .core.version import VERSION


def _read_config(path) -> dict:
    if not path:
        return {}
    try:
        given = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"--config {path}: cannot be read ({exc})") from None
    if not isinstance(given, dict):
        raise ConfigError(f"--config {path}: not a mapping of settings")
    return given


def _row_settings(given: dict, dataset: str, arch: str, model: dict | None, source: str):
    """A workflow config's settings for one row (its row for these minima if it has one, else
    its global sections) and the runtime of a job on it; ``model``: a user network's spec
    recorded in a minimum file, used where the config does not define it."""
    from .settings.config import WorkflowConfig

    rows = [
        r for r in given.get("rows", []) if (r.get("dataset"), r.get("arch")) == (dataset, arch)
    ]
    row = rows[0] if rows else {"dataset": dataset, "arch": arch}
    given = {**given, "rows": [{k: v for k, v in row.items() if k != "minima"}]}
    given.pop("select", None)
    if model is not None and arch not in given.get("models", {}):
        given["models"] = {**given.get("models", {}), arch: dict(model)}
    return WorkflowConfig(given, source=source)


def _runtime(settings, args, dataset: str, arch: str):
    from .stages.compute import JobRuntime

    return JobRuntime(
        data_dir=args.data_dir or settings.values["data_dir"],
        checksums=dict(settings.values["dataset_checksums"]),
        device=args.device or settings.values["device"],
        threads=args.threads,
        speed=settings.speed(dataset, arch),
        definitions=dict(settings.values["datasets"]),
        local_copies=dict(settings.values["local_copies"]),
    )


def _check_out(out: Path, what: str) -> None:
    if out.is_dir():
        raise ConfigError(f"--out {out}: is a directory; name the {what} file to write")


def _connect(args) -> int:
    from .formats.minimum import load_minimum
    from .settings.config import stage_settings
    from .stages.paths import autoneb_job

    out = Path(args.out)
    _check_out(out, "path")
    ma, mb = (load_minimum(p, tensors=False) for p in (args.a, args.b))
    if (ma.dataset, ma.arch, ma.model) != (mb.dataset, mb.arch, mb.model) or (
        ma.recipe != mb.recipe
    ):
        raise ConfigError(
            f"{args.a} ({ma.dataset}/{ma.arch}) and {args.b} ({mb.dataset}/{mb.arch}): the two "
            "minima must share dataset, network and training recipe"
        )
    given = _read_config(args.config)
    settings = _row_settings(
        given, ma.dataset, ma.arch, ma.model, args.config or "the paper's defaults"
    )
    resolved = dict(settings.row(ma.dataset, ma.arch), recipe=dict(ma.recipe))
    if ma.config_hash != mb.config_hash:
        raise ConfigError(
            f"{args.a} and {args.b}: computed under different settings (config hashes "
            f"{ma.config_hash}, {mb.config_hash}); connect minima of one row"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    autoneb_job(
        stage_settings(resolved, "paths"),
        args.a,
        args.b,
        out,
        state_path=out.with_name(out.name + ".state.pt"),
        runtime=_runtime(settings, args, ma.dataset, ma.arch),
        minima_hash=ma.config_hash,
    )
    print(out)
    return 0


def _import(args) -> int:
    from .core.checksums import file_digest
    from .settings.config import stage_settings
    from .stages.minima import import_job

    files = sorted(args.files)
    out_dir = Path(args.out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out-dir {out_dir}: exists and is not a directory")
    given = _read_config(args.config)
    settings = _row_settings(
        given, args.dataset, args.arch, None, args.config or "the paper's defaults"
    )
    resolved = dict(settings.row(args.dataset, args.arch))
    resolved["imported_minima"] = [file_digest(f) for f in files]
    row = stage_settings(resolved, "minima")
    runtime = _runtime(settings, args, args.dataset, args.arch)
    out_dir.mkdir(parents=True, exist_ok=True)
    for k, source in enumerate(files):
        seed = settings.values["seed_base"] + k
        out = out_dir / f"{seed}.safetensors"
        import_job(row, seed, source, out, runtime)
        print(out)
    return 0


def _kind(path: Path) -> str:
    if not path.is_file():
        raise FileFormatError(f"{path}: file not found")
    head = path.read_bytes()[:8]
    if head == b"\x89HDF\r\n\x1a\n":
        import h5py

        from .formats.pathfile import EVALUATION_FORMAT, PATH_FORMAT

        try:
            with h5py.File(path, "r") as f:
                marker = f.attrs.get("nobarriers_format", "")
        except OSError as exc:
            raise FileFormatError(
                f"{path}: an HDF5 signature, but not a readable HDF5 file (truncated or damaged: "
                f"{' '.join(str(exc).split())})"
            ) from None
        marker = marker.decode() if isinstance(marker, bytes) else str(marker)
        kinds = {PATH_FORMAT: "path", EVALUATION_FORMAT: "evaluation"}
        if marker not in kinds:
            raise FileFormatError(
                f"{path}: an HDF5 file, but not a nobarriers {PATH_FORMAT} or "
                f"{EVALUATION_FORMAT} file (format {marker or 'none'!r})"
            )
        return kinds[marker]
    if path.suffix == ".safetensors":
        return "minimum"
    raise FileFormatError(f"{path}: neither a minimum (.safetensors) nor a path file (HDF5)")


#: the root attributes of an aligned path file (stages.paths.aligned_path_job)
ALIGNMENT_ATTRS = ("alignment", "alignment_distance_before", "alignment_distance_after",
                   "alignment_sweeps", "alignment_max_output_diff", "raw_line_saddle_loss",
                   "aligned_line_saddle_loss")  # fmt: skip


def describe_file(path) -> dict:
    """Everything ``inspect`` shows, as plain data (checksums verified on the way)."""
    from .formats.minimum import load_minimum
    from .formats.pathfile import read_evaluation, read_path
    from .models import parameter_count

    path = Path(path)
    kind = _kind(path)
    if kind == "minimum":
        m = load_minimum(path)  # tensors too: verifies their checksum
        return {
            "file": str(path),
            "kind": "minimum",
            "dataset": m.dataset,
            "arch": m.arch,
            "seed": m.seed,
            "parameters": parameter_count(m.build()),  # the dimension of its point
            "config_hash": m.config_hash,
            "recipe": m.recipe,
            "metrics": m.metrics,
            "epochs": len(m.history),
            "model": m.model,
            "imported_from": m.imported_from,
            "provenance": m.provenance,
            "checksum": "verified",
        }
    if kind == "path":
        p = read_path(path)  # pivots too: verifies their checksum
        return {
            "file": str(path),
            "kind": "path",
            "dataset": p.dataset,
            "arch": p.arch,
            "endpoints": list(p.endpoints),
            "config_hash": p.config_hash,
            "seed": p.seed,
            "pivots": int(p.pivots.shape[0]) - 2,
            "dimensions": int(p.pivots.shape[1]),
            "saddle_train_loss": p.saddle_loss,
            "saddle_measured_on": "the full training set"
            if p.weight_subset is None
            else f"{p.weight_subset} training samples",
            "autoneb_saddle_loss": p.autoneb_saddle_loss,
            "cycles": [
                {
                    "cycle": c.cycle,
                    "steps": c.steps,
                    "lr": c.lr,
                    "pivots": c.n_pivots,
                    "saddle_loss": c.saddle_loss,
                    "inserted": list(c.inserted),
                    "climbing_pivot": c.climbing,
                    "no_climb": c.no_climb,
                }
                for c in p.history
            ],  # fmt: skip
            "autoneb": {
                k: p.config["autoneb"][k]
                for k in ("batch_size", "eval_subset", "n_between", "insert_threshold")
                if k in p.config.get("autoneb", {})  # a file written elsewhere may lack them
            },
            "alignment": {k: p.attrs[k] for k in ALIGNMENT_ATTRS if k in p.attrs},
            "provenance": {
                k: p.attrs[k] for k in ("version", "git_revision", "torch") if k in p.attrs
            },
            "checksum": "verified",
        }
    e = read_evaluation(path)
    return {
        "file": str(path),
        "kind": "evaluation",
        "dataset": e.dataset,
        "arch": e.arch,
        "endpoints": list(e.endpoints),
        "config_hash": e.config_hash,
        "points": int(len(e.dense["t"])),
        "saddles": e.saddles,
        "line_saddles": e.line_saddles,
        "provenance": {k: e.attrs[k] for k in ("version", "git_revision", "torch") if k in e.attrs},
        "checksum": "verified",
    }


def _text(info: dict) -> str:
    what = f"{info['kind']} of {info['dataset']}/{info['arch']}"
    lines = [f"{info['file']}: {what} (checksum {info['checksum']})"]
    if info["kind"] == "minimum":
        m, r = info["metrics"], info["recipe"]
        lines += [
            f"  seed {info['seed']}, {info['parameters']} parameters, "
            f"{info['epochs']} epochs recorded",
            *(
                [f"  network {info['model']['build']}(**{info['model']['kwargs']})"]
                if info["model"]
                else []
            ),
            *(
                [
                    f"  imported from {info['imported_from']['file']} (sha256 "
                    f"{info['imported_from']['sha256'][:12]}...)"
                ]
                if info["imported_from"]
                else []
            ),
            f"  recipe: {r.get('epochs')} epochs, batch {r.get('batch_size')}, lr {r.get('lr')}, "
            f"weight decay {r.get('weight_decay')}",
            f"  train loss {m['train_loss']:.6g}, error {m['train_error']:.4g}; "
            f"test loss {m['test_loss']:.6g}, error {m['test_error']:.4g} (exact BatchNorm)",
        ]
    elif info["kind"] == "path":
        a, b = info["endpoints"]
        lines += [
            f"  endpoints {a}-{b}, {info['pivots']} pivots between them, {info['dimensions']} "
            "dimensions, "
            f"seed {info['seed']}",
            f"  saddle train loss {info['saddle_train_loss']:.6g} on {info['saddle_measured_on']} "
            f"(AutoNEB's estimate {info['autoneb_saddle_loss']:.6g})",
            "  AutoNEB " + ", ".join(f"{k} {v}" for k, v in info["autoneb"].items()),
            "  cycle  steps  lr       pivots  saddle loss  inserted at",
        ]
        for c in info["cycles"]:
            inserted = ", ".join(f"{t:.2f}" for t in c["inserted"]) or "-"
            lines.append(
                f"  {c['cycle']:>5}  {c['steps']:>5}  {c['lr']:<7g}  {c['pivots']:>6}  "
                f"{c['saddle_loss']:<11.5g}  {inserted}"
                + (
                    f"  (climbing pivot {c['climbing_pivot']})"
                    if c["climbing_pivot"] is not None
                    else (f"  ({c['no_climb']})" if c.get("no_climb") else "")
                )
            )
        if al := info["alignment"]:
            lines.append(
                f"  aligned by {al['alignment']}: endpoint distance "
                f"{al['alignment_distance_before']:.4g} -> {al['alignment_distance_after']:.4g}, "
                f"straight-line saddle {al['raw_line_saddle_loss']:.5g} -> "
                f"{al['aligned_line_saddle_loss']:.5g}"
            )
        if "hessian" in info:
            lines += _hessian_text(info["hessian"])
    else:
        a, b = info["endpoints"]
        lines.append(f"  endpoints {a}-{b}, {info['points']} points along the path")
        for k, v in sorted(info["saddles"].items()):
            line = info["line_saddles"].get(k, float("nan"))
            lines.append(f"  saddle {k}: {v:.6g} (straight line: {line:.6g})")
    written = ", ".join(f"{k} {v}" for k, v in info["provenance"].items())
    lines.append(f"  config hash {info['config_hash']}; written by {written}")
    return "\n".join(lines)


def _path_hessian(file, args) -> dict:
    """``inspect --hessian``: the Hessian spectrum at a path file's highest point
    (:mod:`nobarriers.engine.hessian`), its network rebuilt from the file's identity (``arch``,
    and ``model`` for a user's network), the loss that of the NEB (its ``weight_decay``), the
    data loaded as ``connect`` loads them (``--config``, ``--data-dir``)."""
    import torch

    from .engine.hessian import highest_point, network_spectrum
    from .formats.pathfile import read_path
    from .models import build_model, check_model_name

    record = read_path(file)
    config = record.config

    def setting(*keys):
        value = config
        for key in keys:
            if not isinstance(value, dict) or key not in value:
                raise FileFormatError(
                    f"{file}: its config has no {'.'.join(keys)}, needed for --hessian (a path "
                    "file written by nobarriers records it)"
                )
            value = value[key]
        return value

    arch, dataset, spec = setting("arch"), setting("dataset"), config.get("model")
    if spec is None:
        try:
            check_model_name(arch)
        except ConfigError:
            raise FileFormatError(
                f"{file}: network {arch!r} is not built in and the file records no 'model' "
                "(a user network's import path): --hessian cannot rebuild it"
            ) from None
    weight_decay = float(setting("autoneb", "weight_decay"))
    batch_size = int(setting("recipe", "eval_batch_size"))
    last = record.history[-1] if record.history else None
    climbing = last.climbing if last is not None else None
    n_pivots = record.pivots.shape[0] - 2
    if climbing is not None and last.n_pivots != n_pivots:
        raise FileFormatError(
            f"{file}: the last cycle ran {last.n_pivots} pivots, /pivots holds {n_pivots}: "
            "its climbing pivot cannot be located"
        )
    settings = _row_settings(
        _read_config(args.config), dataset, arch, spec, args.config or "the paper's defaults"
    )
    chosen, data = _runtime(settings, args, dataset, arch).start(dataset)
    model = build_model(arch, data.num_classes, data.input_shape, spec=spec).to(chosen)
    pivots = torch.from_numpy(record.pivots).to(chosen)
    where = highest_point(pivots, record.saddle["t"], record.saddle["train_loss"], climbing)
    spectrum = network_spectrum(
        model,
        where.point,
        data.x_train,
        data.y_train,
        where.tangent,
        subset=args.hessian_subset,
        batch_size=batch_size,
        weight_decay=weight_decay,
        eps=args.hessian_eps,
    )
    return {
        "at": where.where,
        "t": where.t,
        "samples": min(args.hessian_subset, int(data.y_train.shape[0])),
        "weight_decay": weight_decay,
        **spectrum.to_json(),
    }


def _hessian_text(h: dict) -> list[str]:
    """The lines ``inspect --hessian`` prints for a spectrum; never a value that did not
    converge."""
    residuals = ", ".join(f"{r:.2g}" for r in h["residuals"]) or "none"
    lines = [
        f"  Hessian at the {h['at']} (t = {h['t']:.4g}): {h['samples']} training samples, "
        f"weight decay {h['weight_decay']:g}" + ("" if h["converged"] else ": NOT CONVERGED")
    ]
    if h["converged"]:
        index = (
            f"index {h['n_negative']}" if h["gap"] is not None else f"index >= {h['n_negative']}"
        )
        gap = "not computed" if h["gap"] is None else f"{h['gap']:.4g}"
        lines += [
            f"    {index} (eigenvalues below -{h['eps']:g} * lambda_max), gap {gap}",
            f"    lowest eigenvalues {', '.join(f'{v:.5g}' for v in h['lowest'])}; "
            f"lambda_max {h['lambda_max']:.5g}",
            f"    |cos(lowest eigenvector, path tangent)| {h['cosine_to_tangent']:.4f}",
        ]
    if h["message"] != "converged":
        lines.append(f"    {h['message']}")
    return lines + [
        f"    gradient norm {h['grad_norm']:.4g}; {h['n_products']} Hessian-vector products, "
        f"{h['seconds']:.3g} s",
        f"    residuals |Hv - lambda v|{'' if h['converged'] else ' of the best estimates'}: "
        f"{residuals}",
    ]


def _inspect(args) -> int:
    infos = [describe_file(f) for f in args.files]
    if args.hessian:
        for info in infos:
            if info["kind"] != "path":
                raise ConfigError(
                    f"{info['file']}: --hessian needs a path file; this one holds "
                    + {"minimum": "a minimum", "evaluation": "an evaluation"}[info["kind"]]
                )
            info["hessian"] = _path_hessian(info["file"], args)
    if args.json:
        print(json.dumps(infos if len(infos) > 1 else infos[0], indent=2, default=str))
    else:
        print("\n\n".join(_text(i) for i in infos))
    return 0


def _plan(args) -> int:
    from .settings.config import WorkflowConfig
    from .stages.plan import format_plan, format_simulated_rounds, make_plan

    settings = WorkflowConfig.load(args.configfile)
    print(format_plan(make_plan(settings, args.gpus, args.tflops, args.pivots)))
    sizes = sorted({len(settings.row(*r)["seeds"]) for r in settings.selected_rows()})
    for n in sizes:
        print(format_simulated_rounds(n, settings.values["exploration"]))
    return 0


def _table(args) -> int:
    from .formats.records import TABLE_B1_COLUMNS, TableRow
    from .report.table import format_table_b1_latex, format_table_b1_markdown

    folder = Path(args.results_dir)
    rows = sorted(folder.glob("*/*/table_row.json"))
    if not folder.is_dir() or not rows:
        raise FileFormatError(f"{folder}: no table rows (<dataset>/<arch>/table_row.json) here")
    records = [TableRow.read(p) for p in rows]
    if args.format == "md":
        print(format_table_b1_markdown(records))
    elif args.format == "tex":
        print(format_table_b1_latex(records))
    else:
        import pandas as pd

        frame = pd.DataFrame([r.to_json() for r in records])
        print(frame[[c for c in TABLE_B1_COLUMNS if c in frame]].to_csv(index=False), end="")
    return 0


EXAMPLES = {
    "connect": """example:
  nobarriers connect results/digits/mlp-4/minima/0.safetensors \\
      results/digits/mlp-4/minima/1.safetensors --out 0-1.h5 --config config/config.yaml
Run the same command again after an interruption: it resumes after the last finished cycle.""",
    "import": """example:
  nobarriers import runs/seed*.pt --dataset my_data --arch my_net \\
      --out-dir results/my_data/my_net/minima --config my.yaml
Each file is loaded with weights_only=True and checked against the network; its BN
statistics are recomputed on the row's training data and its metrics measured as a
trained minimum's are.""",
    "inspect": """examples:
  nobarriers inspect results/digits/mlp-4/minima/0.safetensors
  nobarriers inspect --json results/digits/mlp-4/paths/0-1.h5
  nobarriers inspect --hessian --config config/config.yaml results/digits/mlp-4/paths/0-1.h5
Every checksum a file carries is verified; a corrupt or foreign file is refused by name.""",
    "plan": """example:
  nobarriers plan --configfile config/paper.yaml --gpus 8 --tflops 15
The FLOPs are counted per network; the throughput is assumed unless --tflops gives a
measured one, so treat GPU hours as an estimate (docs/cluster.md).""",
    "table": """examples:
  nobarriers table results
  nobarriers table results --format tex > table_b1.tex""",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nobarriers",
        description="Minimum energy paths between neural-network minima (Draxler et al., "
        "ICML 2018) for one-off use beside the Snakemake workflow.",
        epilog="Bad input ends with one line naming the file or key and exit status 2. "
        "Run 'nobarriers COMMAND --help' for a command's options and an example.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, summary):
        return sub.add_parser(
            name, help=summary, description=summary + ".", epilog=EXAMPLES[name],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )  # fmt: skip

    c = command("connect", "AutoNEB between two stored minima, resumable")
    c.add_argument("a", help="first minimum (.safetensors, written by the workflow)")
    c.add_argument("b", help="second minimum, same dataset, architecture and recipe")
    c.add_argument("--out", required=True, help="path file to write (HDF5); its resume state "
                   "is kept beside it as <out>.state.pt until the path is finished")  # fmt: skip
    c.add_argument("--config", help="a workflow config (YAML) whose autoneb/mst settings to use "
                   "(its row for these minima, if any); default: the paper's")  # fmt: skip
    c.add_argument("--device", choices=["auto", "cpu", "cuda"], help="default: the config's")
    c.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    c.add_argument("--data-dir", help="where the datasets are (default: the config's data_dir)")
    m = command("import", "Minima trained elsewhere as minimum files of a row")
    m.add_argument("files", nargs="+", metavar="FILE", help="state dicts: .safetensors, or "
                   "torch.save files (read with weights_only=True); minimum k (sorted by name) "
                   "gets seed seed_base + k")  # fmt: skip
    m.add_argument("--dataset", required=True, help="the row's dataset (built in, or defined in "
                   "--config)")  # fmt: skip
    m.add_argument("--arch", required=True, help="the row's network (built in, or defined in "
                   "--config's models)")  # fmt: skip
    m.add_argument("--out-dir", required=True, help="folder of the minimum files to write "
                   "(<seed>.safetensors)")  # fmt: skip
    m.add_argument("--config", help="a workflow config (YAML) defining the dataset, the network "
                   "and the recipe's eval_batch_size; default: the paper's")  # fmt: skip
    m.add_argument("--device", choices=["auto", "cpu", "cuda"], help="default: the config's")
    m.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    m.add_argument("--data-dir", help="where the datasets are (default: the config's data_dir)")
    i = command("inspect", "What a minimum, path or evaluation file holds")
    i.add_argument("files", nargs="+", metavar="FILE", help="minimum (.safetensors), path (.h5) "
                   "or evaluation (.json) files")  # fmt: skip
    i.add_argument("--json", action="store_true", help="machine-readable output")
    i.add_argument("--hessian", action="store_true", help="path files: the lowest and largest "
                   "eigenvalues of the training-loss Hessian at the highest point (climbing "
                   "pivot or dense maximum), by Lanczos; docs/hessian.md")  # fmt: skip
    i.add_argument("--hessian-subset", type=int, default=1024, metavar="N",
                   help="training samples of the loss (seed 0; default 1024)")  # fmt: skip
    i.add_argument("--hessian-eps", type=float, default=1e-3, metavar="EPS", help="eigenvalues "
                   "below -EPS*lambda_max count as negative (default 1e-3)")  # fmt: skip
    i.add_argument("--config", help="--hessian: a workflow config (YAML) saying where the data "
                   "are (data_dir, a user's datasets); default: the paper's")  # fmt: skip
    i.add_argument("--data-dir", help="--hessian: where the datasets are (default: the config's "
                   "data_dir)")  # fmt: skip
    i.add_argument("--device", choices=["auto", "cpu", "cuda"], help="--hessian: default: the "
                   "config's")  # fmt: skip
    i.add_argument("--threads", type=int, default=None, help="--hessian: torch CPU threads")
    p = command("plan", "What a configuration will cost, before it is submitted")
    p.add_argument("--configfile", required=True, help="the workflow config (YAML) to plan; it is "
                   "validated exactly as the workflow validates it")  # fmt: skip
    p.add_argument("--gpus", type=int, default=1, help="concurrent GPUs for the wall time")
    p.add_argument("--tflops", type=float, default=None, help="sustained fp32 TFLOP/s of one "
                   "GPU on these networks, measured (default: an assumed value)")  # fmt: skip
    p.add_argument("--pivots", type=int, default=7, help="interior pivots a path carries on "
                   "average (assumed; the paper's schedule grows them from 3)")  # fmt: skip
    t = command("table", "Table B.1 of a results folder")
    t.add_argument("results_dir", metavar="RESULTS_DIR", help="a workflow's results_dir (it "
                   "holds report/table_b1.csv once the workflow has finished)")  # fmt: skip
    t.add_argument("--format", choices=["md", "csv", "tex"], default="md", help="Markdown "
                   "(default), CSV or LaTeX")  # fmt: skip
    return parser


COMMANDS = {
    "connect": _connect,
    "import": _import,
    "inspect": _inspect,
    "plan": _plan,
    "table": _table,
}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(None)
    try:
        return COMMANDS[args.command](args)
    except NoBarriersError as exc:
        print(f"nobarriers {args.command}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the file system's answer (a folder where a file was named, ...)
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"nobarriers {args.command}: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
