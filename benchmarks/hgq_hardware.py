"""An HGQ run's models (a run folder, or the .partial folder of a run whose yosys step did not
finish) through the RTL flow: float/HGQ/proxy accuracy on the run's test jets (rebuilt from
CONFIG), EBOPs (activation ranges traced on the training jets, as the run does), and
build_hardware on the proxy model (Verilator bit-exact check, latency, da4ml's LUT
estimate; --synth adds yosys). Prints JSON and the report; writes OUT/measure.json.

    PYTHONPATH=. nice -n 10 python benchmarks/hgq_hardware.py CONFIG RUN_FOLDER OUT [--synth]
"""

import json
import sys
import time
from pathlib import Path

import numpy as np

from hepfpga.firmware.rtl.flow import build_hardware
from hepfpga.pipeline.config import load_config
from hepfpga.pipeline.run import Run
from hepfpga.pipeline.stages import data_stage
from hepfpga.quantize.hgq import ebops, logits_model, proxy_model
from hepfpga.quantize.model_io import load_keras_model

config = load_config(sys.argv[1])
saved = Path(sys.argv[2])
out = Path(sys.argv[3])
synth = "--synth" in sys.argv[4:]
scratch = out / "data"
scratch.mkdir(parents=True)
data = data_stage(Run(config=config, run_dir=scratch))
hgq = load_keras_model(saved / "hgq_model.h5")
proxy = load_keras_model(saved / "hgq_proxy_model.h5")
flt = load_keras_model(saved / "float_model.h5")


def acc(p: np.ndarray) -> float:
    return float(np.mean(np.argmax(p, 1) == data.y_test))


res = {
    "float_accuracy": acc(flt.predict(data.x_test, verbose=0)),
    "hgq_accuracy": acc(hgq.predict(data.x_test, verbose=0)),
    "proxy_accuracy": acc(proxy.predict(data.x_test, verbose=0)),
}
proxy_model(
    logits_model(hgq), data.inputs.train
)  # trace_minmax on the training set, as the run did
res["ebops"] = ebops(hgq)
print(json.dumps(res), flush=True)
t = time.time()
b = build_hardware(proxy, data.x_test, out / "rtl", synth=synth, ebops=res["ebops"])
print(b.report.summary())
print("seconds", b.report.seconds, time.time() - t)
(out / "measure.json").write_text(json.dumps({**res, "hardware": b.report.to_dict()}, indent=1))
