"""HGQ MLP at several beta values against QKeras 6-bit (the baseline, same run) on the
built-in sample: the default jet_tagging config with the BDT off, each a full run (float
training, QAT, firmware built and verified). Prints one JSON line per variant.

    PYTHONPATH=. python benchmarks/hgq_beta.py OUTPUT_DIR 1e-5 1e-4 1e-3
"""

from __future__ import annotations

import json
import sys
import time

from hepfpga.pipeline.config import config_to_dict, load_config, parse_config
from hepfpga.pipeline.runner import run_pipeline

QKERAS_ONLY_KEYS = (
    "weight_bits", "weight_integer", "activation_bits", "activation_integer",
    "input_bits", "input_integer", "kinds", "layers",
)  # fmt: skip


def main(output_dir: str, betas: list[float]) -> None:
    base = config_to_dict(load_config("examples/jet_tagging.yaml"))
    base["bdt"]["enabled"] = False
    base["output_dir"] = output_dir
    variants: list[tuple[str, dict]] = [("qkeras6", {})]
    for beta in betas:
        settings = {"beta": beta, "beta_initial": beta / 100, "ramp_epochs": 20}
        variants.append((f"hgq_beta{beta:g}", {"method": "hgq", "hgq": settings}))
    for name, quantization in variants:
        config = json.loads(json.dumps(base))
        config["name"] = name
        config["quantization"].update(quantization)
        if quantization:
            for key in QKERAS_ONLY_KEYS:
                config["quantization"].pop(key, None)
        start = time.time()
        result = run_pipeline(parse_config(config))
        report = json.loads((result.run_dir / "report.json").read_text())
        quantized = report[config["quantization"].get("method", "qkeras")]
        line = {
            "name": name,
            "float_accuracy": report["float"]["test"]["accuracy"],
            "accuracy": quantized["test"]["accuracy"],
            "auc": quantized["test"]["auc"],
            "ebops": quantized.get("ebops"),
            "hls_accuracy": report.get("hls", {}).get("test", {}).get("accuracy"),
            "bit_exact": report.get("verification", {}).get("passed"),
            "minutes": round((time.time() - start) / 60, 1),
        }
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], [float(value) for value in sys.argv[2:]])
