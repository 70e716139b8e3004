"""Float / QKeras / HLS accuracy of every jet-tagging architecture on one sample, as a table.

    python benchmarks/architectures.py --data SAMPLE [--arch mlp,deepsets,cnn,lstm,gru,garnet]
        [--configs scale|examples|FOLDER] [--out DIR] [--epochs N] [--qat-epochs N]
        [--patience N] [--batch-size N] [--max-events N] [--max-jets N] [--table-only]

For each architecture it writes ``DIR/configs/<arch>.yaml``: the pipeline's config
(``examples/scale/jet_*.yaml`` by default, sized for 100k+ jets; ``--configs examples`` takes
the ``examples/jet_*.yaml`` sized for the built-in 12k training jets) with ``data.path`` set
to SAMPLE (a file, a folder of shards or a glob; read as ``hepfpga run`` reads it) and the
given overrides, then runs ``python -m hepfpga run DIR/configs/<arch>.yaml --output-dir
DIR/runs --overwrite`` as a child process, one after the other. From each finished run's
``report.json`` it takes the training jets, the test jets, the float / QKeras / HLS test
accuracies, the float and QAT fit times and epochs, and adds the child's peak RSS (``ru_maxrss``
of the ``hepfpga run`` process from ``wait4``, its own and that of the children it waited for:
the largest resident set of the run) and wall time. The table goes to stdout and to
``DIR/table.md`` (with the commands that reproduce each row), the rows to ``DIR/table.json``.

``--table-only`` rebuilds the table from the run folders already in ``DIR/runs`` (peak RSS and
wall time from ``DIR/table.json`` when an earlier invocation measured them).

The accuracy is the fraction of test jets whose highest score is their true class, over the
test jets the run verified (``verification.max_events`` caps them: a stratified subset); its
statistical uncertainty is about sqrt(a (1 - a) / n_test) (0.5 points at 8,000 test jets).
A run whose checks fail (exit status 1) still has its row, with its status; a run that
crashed has a row with its exit status and no accuracies. Exit status 1 when any run did not
pass.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

#: architecture -> the config file name (the same under examples/ and examples/scale/)
CONFIGS = {
    "mlp": "jet_tagging.yaml",
    "cnn": "jet_cnn.yaml",
    "deepsets": "jet_deepsets.yaml",
    "lstm": "jet_lstm.yaml",
    "gru": "jet_gru.yaml",
    "garnet": "jet_garnet.yaml",
}
LABELS = {
    "mlp": "MLP",
    "cnn": "CNN",
    "deepsets": "Deep Sets",
    "lstm": "LSTM",
    "gru": "GRU",
    "garnet": "GarNet",
}


@dataclass
class Row:
    """One architecture's line of the table (accuracies are fractions in [0, 1])."""

    arch: str
    status: str
    exit_status: int | None = None
    parameters: int | None = None
    train_jets: int | None = None
    test_jets: int | None = None
    float_accuracy: float | None = None
    qkeras_accuracy: float | None = None
    hls_accuracy: float | None = None
    float_seconds: float | None = None
    float_epochs: int | None = None
    qat_seconds: float | None = None
    qat_epochs: int | None = None
    total_seconds: float | None = None
    peak_rss_mib: float | None = None
    wall_seconds: float | None = None
    #: the ``hepfpga run`` command of this row's run
    command: str = ""
    #: the benchmark invocation that ran it
    invocation: str = ""


def _get(report: dict, *keys: str):
    node = report
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def row_from_report(arch: str, report: dict) -> Row:
    """The table row of a finished run's ``report.json`` (parsed)."""
    return Row(
        arch=arch,
        status=str(report.get("status", "unknown")),
        parameters=_get(report, "parameters"),
        train_jets=_get(report, "data", "split", "train"),
        test_jets=_get(report, "hls", "test", "n_events"),
        float_accuracy=_get(report, "float", "test", "accuracy"),
        qkeras_accuracy=_get(report, "qkeras", "test", "accuracy"),
        hls_accuracy=_get(report, "hls", "test", "accuracy"),
        float_seconds=_get(report, "float", "fit", "seconds"),
        float_epochs=_get(report, "float", "fit", "epochs_run"),
        qat_seconds=_get(report, "qkeras", "fit", "seconds"),
        qat_epochs=_get(report, "qkeras", "fit", "epochs_run"),
        total_seconds=_get(report, "timings_s", "total"),
    )


def build_config(
    template: Path, arch: str, data: str, output_dir: Path, args: argparse.Namespace
) -> dict:
    """The template's config with the sample and the command-line overrides."""
    config = yaml.safe_load(template.read_text())
    if config.get("model", {}).get("architecture") != arch:
        sys.exit(f"error: {template}: model.architecture is not {arch!r}")
    config["name"] = arch
    config["output_dir"] = str(output_dir)
    config.setdefault("data", {})["path"] = data
    if args.max_jets is not None:
        config["data"]["max_jets"] = args.max_jets
    training = config.setdefault("training", {})
    quantization = config.setdefault("quantization", {})
    if args.epochs is not None:
        training["epochs"] = args.epochs
    if args.qat_epochs is not None:
        quantization["epochs"] = args.qat_epochs
    if args.patience is not None:
        training["early_stopping"] = {"patience": args.patience}
        quantization["early_stopping"] = {"patience": args.patience}
    if args.batch_size is not None:
        training["batch_size"] = args.batch_size
        quantization["batch_size"] = args.batch_size
    if args.max_events is not None:
        config.setdefault("verification", {})["max_events"] = args.max_events
    return config


def run_one(config_file: Path, runs: Path, log: Path) -> tuple[int, float, float]:
    """``hepfpga run`` in a child process: (exit status, peak RSS in MiB, wall seconds)."""
    command = [
        sys.executable, "-m", "hepfpga", "run", str(config_file),
        "--output-dir", str(runs), "--overwrite",
    ]  # fmt: skip
    start = time.perf_counter()
    with log.open("w") as out:
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    # Linux: ru_maxrss in KiB
    return child.returncode, usage.ru_maxrss / 1024, wall


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _num(value: float | None, fmt: str = "{:.0f}") -> str:
    return "-" if value is None else fmt.format(value)


def _epochs(seconds: float | None, epochs: int | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.0f} ({epochs} ep)" if epochs is not None else f"{seconds:.0f}"


def markdown(rows: list[Row]) -> str:
    header = (
        "| architecture | training jets | test jets | parameters | float | QKeras | HLS "
        "| float training s (epochs) | QAT s (epochs) | run total s | peak RSS MiB | status |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n"
    )
    lines = [
        f"| {LABELS.get(r.arch, r.arch)} | {_num(r.train_jets)} | {_num(r.test_jets)} "
        f"| {_num(r.parameters)} | {_pct(r.float_accuracy)} | {_pct(r.qkeras_accuracy)} "
        f"| {_pct(r.hls_accuracy)} | {_epochs(r.float_seconds, r.float_epochs)} "
        f"| {_epochs(r.qat_seconds, r.qat_epochs)} | {_num(r.total_seconds)} "
        f"| {_num(r.peak_rss_mib)} | {r.status} |"
        for r in rows
    ]
    return header + "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="sample file, shard folder or glob")
    parser.add_argument("--arch", default=",".join(CONFIGS), help="comma-separated")
    parser.add_argument("--configs", default="scale", help="scale, examples or a folder")
    parser.add_argument("--out", type=Path, default=Path("runs/architectures"))
    parser.add_argument("--epochs", type=int, help="training.epochs (float)")
    parser.add_argument("--qat-epochs", type=int, help="quantization.epochs")
    parser.add_argument("--patience", type=int, help="early-stopping patience (both fits)")
    parser.add_argument("--batch-size", type=int, help="batch size (both fits)")
    parser.add_argument("--max-events", type=int, help="verification.max_events")
    parser.add_argument("--max-jets", type=int, help="data.max_jets")
    parser.add_argument("--table-only", action="store_true", help="only rebuild the table")
    args = parser.parse_args(argv)
    invocation = shlex.join(["python", "benchmarks/architectures.py", *(argv or sys.argv[1:])])

    archs = [a.strip() for a in args.arch.split(",") if a.strip()]
    unknown = [a for a in archs if a not in CONFIGS]
    if unknown:
        parser.error(f"--arch: unknown {', '.join(unknown)}; accepted: {', '.join(CONFIGS)}")
    folder = {"scale": ROOT / "examples" / "scale", "examples": ROOT / "examples"}.get(
        args.configs, Path(args.configs)
    )
    out = args.out.resolve()
    runs = out / "runs"
    (out / "configs").mkdir(parents=True, exist_ok=True)
    table_json = out / "table.json"
    previous = {}
    if table_json.exists():
        previous = {r["arch"]: Row(**r) for r in json.loads(table_json.read_text())["rows"]}

    rows: dict[str, Row] = dict(previous)
    for arch in archs:
        config_file = out / "configs" / f"{arch}.yaml"
        command = (
            f"nice -n 10 {sys.executable} -m hepfpga run {shlex.quote(str(config_file))} "
            f"--output-dir {shlex.quote(str(runs))} --overwrite"
        )
        measured = previous.get(arch)
        if not args.table_only:
            config = build_config(folder / CONFIGS[arch], arch, args.data, runs, args)
            config_file.write_text(yaml.safe_dump(config, sort_keys=False))
            print(f"[{arch}] {command}", flush=True)
            status, rss, wall = run_one(config_file, runs, out / f"{arch}.log")
            measured = Row(arch=arch, status="", exit_status=status, peak_rss_mib=rss,
                           wall_seconds=wall, invocation=invocation)  # fmt: skip
        report_file = runs / arch / "report.json"
        if report_file.exists() and (measured is None or measured.exit_status in (0, 1)):
            row = row_from_report(arch, json.loads(report_file.read_text()))
        else:
            row = Row(arch=arch, status="crashed" if measured else "not run")
        if measured is not None:
            row.exit_status = measured.exit_status
            row.peak_rss_mib = measured.peak_rss_mib
            row.wall_seconds = measured.wall_seconds
            row.invocation = measured.invocation
        row.command = command
        rows[arch] = row
        table_json.write_text(json.dumps({"data": args.data,
                                          "rows": [asdict(r) for r in rows.values()]},
                                         indent=1))  # fmt: skip
        print(markdown([row]), flush=True)

    ordered = [rows[a] for a in CONFIGS if a in rows]
    table = markdown(ordered)
    commands = "\n".join(
        f"    {r.invocation or '(no invocation recorded)'}\n        # {r.command}" for r in ordered
    )
    (out / "table.md").write_text(
        f"Sample: `{args.data}`\n\n{table}\nCommands (nice -n 10; each writes the config "
        f"under `{out / 'configs'}` and runs the `hepfpga run` after #):\n\n{commands}\n"
    )
    print(table)
    return 0 if all(r.status == "passed" for r in ordered) else 1


if __name__ == "__main__":
    sys.exit(main())
