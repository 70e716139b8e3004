"""Signal efficiency at background acceptances down to 1e-5, on a large background sample.

    python benchmarks/trigger_rates.py --background FOLDER [--config examples/anomaly_ae.yaml]
        [--data SAMPLE] [--acceptances 1e-3,1e-4,1e-5] [--max-background-jets N]
        [--out DIR] [--table-only]

It writes ``DIR/config.yaml``: the pipeline config (the anomaly autoencoder on the built-in
sample by default) with ``task.trigger_rates.background`` set to FOLDER (a shard folder or any
file ``data.path`` reads: ``hepfpga data generate --out FOLDER --classes q,g --per-class
500000 --seed 1`` makes a million q and g jets), ``task.trigger_rates.acceptances`` and, with
``--data``, ``data.path``; then runs ``python -m hepfpga run DIR/config.yaml --output-dir
DIR/runs --overwrite`` as a child process. The ``trigger_rates`` stage of that run scores
every background jet with the firmware's bulk emulator (the firmware's own fixed-point
numbers, proven against the C simulation by the run's ``emulation`` stage) and reports, per
signal class and acceptance, the signal efficiency with its Clopper-Pearson interval and its
threshold interval (the efficiency's spread from the finite background), the realised
background acceptance and how many background jets pass. The table goes to stdout and to
``DIR/table.md`` with the command that reproduces it, with the stage's time and the run's peak
RSS (``ru_maxrss`` of the ``hepfpga run`` process).

The background must hold no jet the model was trained on: a folder made with another seed
than the training sample's (the built-in sample's is 2026) shares none.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import yaml

# a sibling script, not a package
sys.path.insert(0, str(Path(__file__).resolve().parent))
from architectures import ROOT, run_one


def build_config(args: argparse.Namespace, output_dir: Path) -> dict:
    """The template config with the background, its acceptances and the sample."""
    config = yaml.safe_load(args.config.read_text())
    config["name"] = args.name
    config["output_dir"] = str(output_dir)
    task = config.setdefault("task", {})
    rates = dict(task.get("trigger_rates") or {})
    rates["background"] = str(args.background.resolve())
    rates["acceptances"] = args.acceptances
    if args.max_background_jets is not None:
        rates["max_background_jets"] = args.max_background_jets
    task["trigger_rates"] = rates
    if args.data is not None:
        config.setdefault("data", {})["path"] = args.data
    return config


def _interval(bounds: list[float] | None) -> str:
    return "-" if not bounds else f"[{bounds[0]:.4f}, {bounds[1]:.4f}]"


def markdown(rates: dict) -> str:
    """One row per signal class and acceptance of ``report.json``'s ``trigger_rates``."""
    lines = [
        "| signal | acceptance | efficiency | stat. interval (CL) | threshold interval "
        "| background jets passing / total | realised acceptance | signal jets |",
        "|---|---:|---:|---|---|---:|---:|---:|",
    ]
    for signal, cells in rates.get("efficiencies", {}).items():
        for key, cell in cells.items():
            if cell.get("efficiency") is None:
                lines.append(
                    f"| {signal} | {key} | - | {cell.get('reason')} | | "
                    f"- / {cell['n_background']:,} | - | {cell['n_signal']:,} |"
                )
                continue
            lines.append(
                f"| {signal} | {key} | {cell['efficiency']:.4f} "
                f"| {_interval(cell['efficiency_interval'])} "
                f"| {_interval(cell['threshold_interval_efficiency'])} "
                f"| {cell['n_background_passing']:,} / {cell['n_background']:,} "
                f"| {cell['background_acceptance']:.2e} | {cell['n_signal']:,} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--background", type=Path, required=True)
    parser.add_argument("--config", type=Path, default=ROOT / "examples" / "anomaly_ae.yaml")
    parser.add_argument("--data", help="data.path of the run (default: the config's)")
    parser.add_argument("--acceptances", default="1e-3,1e-4,1e-5")
    parser.add_argument("--max-background-jets", type=int)
    parser.add_argument("--name", default="trigger_rates")
    parser.add_argument("--out", type=Path, default=Path("runs/trigger_rates"))
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args(argv)
    args.acceptances = [float(a) for a in args.acceptances.split(",")]
    out = args.out.resolve()
    runs = out / "runs"
    measured = {}
    if not args.table_only:
        out.mkdir(parents=True, exist_ok=True)
        config_file = out / "config.yaml"
        config_file.write_text(yaml.safe_dump(build_config(args, runs), sort_keys=False))
        status, rss, wall = run_one(config_file, runs, out / "run.log")
        measured = {"exit_status": status, "peak_rss_mib": round(rss), "wall_seconds": wall}
        (out / "measured.json").write_text(json.dumps(measured, indent=1))
    elif (out / "measured.json").is_file():
        measured = json.loads((out / "measured.json").read_text())
    report_file = runs / args.name / "report.json"
    if not report_file.is_file():
        sys.exit(f"error: {report_file}: no report (see {out / 'run.log'})")
    report = json.loads(report_file.read_text())
    rates = report.get("trigger_rates") or {}
    if rates.get("status") != "measured":
        sys.exit(f"error: no trigger rates in {report_file}: {rates.get('reason', rates)}")
    invocation = shlex.join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])])
    text = (
        f"Background: {rates['background']}; scores: {rates['scores']}; "
        f"confidence {rates['confidence']}; trigger_rates stage {rates['seconds']:.0f} s"
        + (
            f"; run {measured['wall_seconds']:.0f} s, peak RSS {measured['peak_rss_mib']} MiB"
            if measured
            else ""
        )
        + f"\n\n{markdown(rates)}\nReproduce: `python benchmarks/{invocation}`\n"
    )
    (out / "table.md").write_text(text)
    print(text)
    return 0 if report.get("status") == "passed" else 1


if __name__ == "__main__":
    sys.exit(main())
