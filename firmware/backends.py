"""hls4ml backends as registered objects with their behaviour.

An :class:`HLSBackend` carries what hepfpga does differently per backend: the name hls4ml
registers it under, the vendor tools that build its projects (and how they take the build
steps), the default part, the softmax modes whose C simulation compiles, the softmax type
overrides it needs, the edits of the projects hls4ml writes for it, the io_types whose C
simulation it cannot run, whether it uses hls4ml's Vivado templates, and the reader of its
build reports. :class:`~hepfpga.firmware.options.Backend` (the validated ``firmware.backend``
choice) is derived from :data:`BACKENDS`, one member per registered backend, and maps back
through ``Backend.info``. A new backend is one :func:`register_backend` call; nothing else
branches on the name.

Only backends whose C simulation compiles with g++ alone are registered (checked with hls4ml
1.3): Vitis and Vivado (``ap_fixed``), Catapult and Quartus (``ac_fixed``, headers shipped
with hls4ml). oneAPI needs Intel's ``icpx`` and Libero SmartHLS's ``shls`` even for C
simulation, so they are not offered. Catapult compiles only without a softmax
(``softmax: logits``); Quartus' table softmax is coarser (see ``docs/firmware.md``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hepfpga.errors import ConfigError, ConversionError, MissingDependencyError
from hepfpga.firmware.catapult_stream import fix_concatenate_stream
from hepfpga.firmware.catapult_templates import fix_templates
from hepfpga.firmware.fill_buffer import tabulate_fill_buffers
from hepfpga.firmware.quartus_tables import rewrite_softmax_tables
from hepfpga.firmware.rtl.report import HardwareReport
from hepfpga.firmware.softmax import SOFTMAX_MODES
from hepfpga.firmware.vendor import BuildSteps, read_reports
from hepfpga.quantize.fixed import FixedType
from hepfpga.registry import Registry

__all__ = ["BACKENDS", "HLSBackend", "VendorTool", "build_project", "register_backend"]


@dataclass(frozen=True)
class VendorTool:
    """A vendor tool that builds a backend's projects."""

    #: executable looked up on PATH
    executable: str
    #: shell command run in the project folder
    command: str
    #: how the build steps reach ``build_prj.tcl``: "opt_file" (``build_opt.tcl``, Vitis),
    #: "argument" (``"csim=0 synth=1 ..."`` on the command line, Vivado HLS) or "none"
    switches: str
    #: what to install and source, for the error when it is missing
    product: str


def _signed_types(value: Any) -> Any:
    """``ap_ufixed<W,I,...>`` -> ``ap_fixed<W+1,I+1,...>`` everywhere in a settings tree."""
    if isinstance(value, dict):
        return {key: _signed_types(item) for key, item in value.items()}
    if isinstance(value, str) and value.startswith("ap_ufixed<"):
        fixed = FixedType.parse(value)
        return FixedType(
            fixed.width + 1, fixed.integer + 1, True, fixed.rounding, fixed.saturation
        ).to_hls()
    return value


@dataclass(frozen=True)
class HLSBackend:
    """One hls4ml backend and its behaviour."""

    #: name hls4ml registers the backend under
    hls4ml_name: str
    #: vendor tools that build its projects, preferred first
    vendor_tools: tuple[VendorTool, ...]
    #: FPGA part used when ``FirmwareOptions.part`` is not set
    default_part: str = "xcvu13p-flga2577-2-e"
    #: values of ``firmware.softmax`` whose C simulation compiles for this backend
    softmax_modes: tuple[str, ...] = SOFTMAX_MODES
    #: rewrites the softmax layer settings for this backend (None: used as they are)
    softmax_override: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    #: reads a built project's reports (None: not parsed yet)
    report_reader: Callable[[Path], HardwareReport] | None = None
    #: its projects use hls4ml's Vivado templates (``nnet_utils``: the activations, recurrent
    #: layers and GarNet that the emulator reproduces); Quartus and Catapult have their own
    vivado_templates: bool = False
    #: edits of the project hls4ml writes for this backend, ``(hls_model, folder)``, applied
    #: in order after every ``write()`` (empty: used as written)
    patch_project: tuple[Callable[[Any, Path], None], ...] = ()
    #: (io_type, why this backend's traced C simulation cannot run in it) pairs, refused
    #: before any build by :meth:`check_simulation`
    unsimulable_io: tuple[tuple[str, str], ...] = ()

    @property
    def tools(self) -> tuple[str, ...]:
        """The vendor executables, preferred first."""
        return tuple(tool.executable for tool in self.vendor_tools)

    @property
    def build_commands(self) -> tuple[str, ...]:
        """The build command of each tool (run in the project folder)."""
        return tuple(tool.command for tool in self.vendor_tools)

    def softmax_settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        """The softmax layer settings as this backend's hls4ml needs them."""
        return settings if self.softmax_override is None else self.softmax_override(settings)

    def check_simulation(self, io_type: str) -> None:
        """Refuse (:class:`ConversionError`) a C simulation in ``io_type`` that this backend's
        hls4ml writes wrongly (:attr:`unsimulable_io`)."""
        reason = dict(self.unsimulable_io).get(io_type)
        if reason is not None:
            raise ConversionError(reason)

    def find_tool(self) -> VendorTool:
        """The first vendor tool on PATH, or :class:`MissingDependencyError` naming them."""
        for tool in self.vendor_tools:
            if shutil.which(tool.executable):
                return tool
        products = "; ".join(f"{t.executable}: {t.product}" for t in self.vendor_tools)
        raise MissingDependencyError(
            f"building a {self.hls4ml_name} project needs {' or '.join(self.tools)} on PATH, "
            f"and none is there ({products}); install it and source its settings64.sh, or use "
            "`hepfpga hardware` for open-tool figures"
        )

    def build(self, folder: str | Path, steps: BuildSteps) -> HardwareReport:
        """Run the vendor flow (``steps``) in the project ``folder`` and read its reports.
        The tool's output goes to ``build_stdout.log`` there."""
        folder = Path(folder)
        if self.report_reader is None:
            raise ConfigError(
                f"the reports of {self.hls4ml_name} builds are not parsed by hepfpga; run "
                f"'{self.build_commands[0]}' in {folder} yourself"
            )
        tool = self.find_tool()
        options = steps.tcl_options()
        command = tool.command
        if tool.switches == "opt_file":
            body = "".join(f"    {k} {v}\n" for k, v in options.items())
            (folder / "build_opt.tcl").write_text(f"array set opt {{\n{body}}}\n")
        elif tool.switches == "argument":
            command += ' "' + " ".join(f"{k}={v}" for k, v in options.items()) + '"'
        log = folder / "build_stdout.log"
        with log.open("w") as stream:
            done = subprocess.run(
                command, shell=True, cwd=folder, stdout=stream, stderr=subprocess.STDOUT
            )
        if done.returncode != 0:
            raise ConversionError(f"'{command}' failed with status {done.returncode}; see {log}")
        return self.report_reader(folder)


#: hls4ml backend name -> backend
BACKENDS = Registry[HLSBackend]("backend")


def register_backend(backend: HLSBackend) -> HLSBackend:
    """Add ``backend`` to :data:`BACKENDS` under its hls4ml name."""
    return BACKENDS.register(backend.hls4ml_name, backend)


def _backend_of(project: Path) -> str:
    config = project / "hls4ml_config.yml"
    if config.is_file():
        match = re.search(r"^Backend:\s*(\w+)", config.read_text(), re.MULTILINE)
        if match:
            return match.group(1)
    if (project / "build_opt.tcl").is_file():
        return "Vitis"
    return "Vivado"


def build_project(project: str | Path, steps: BuildSteps | None = None) -> HardwareReport:
    """Run the vendor HLS flow of the hls4ml project folder ``project`` with its backend's
    registered tools and read its reports (:mod:`hepfpga.firmware.vendor`). The tool's
    output goes to ``build_stdout.log`` in the project folder."""
    folder = Path(project)
    if not (folder / "build_prj.tcl").is_file():
        raise ConfigError(f"{folder} is not an hls4ml project (no build_prj.tcl)")
    name = _backend_of(folder)
    if name not in BACKENDS:
        raise ConfigError(f"unknown backend {name!r}; registered: {', '.join(BACKENDS)}")
    return BACKENDS[name].build(folder, steps or BuildSteps())


register_backend(
    HLSBackend(
        "Vitis",
        (
            VendorTool(
                "vitis-run",
                "vitis-run --mode hls --tcl build_prj.tcl",
                "opt_file",
                "AMD Vitis 2024.2+, source <Vitis>/settings64.sh",
            ),
            VendorTool(
                "vitis_hls",
                "vitis_hls -f build_prj.tcl",
                "opt_file",
                "AMD Vitis HLS, source <Vitis_HLS>/settings64.sh",
            ),
        ),
        report_reader=read_reports,
        vivado_templates=True,
        # the io_parallel convolutions' generated im2col, a table in the C simulation only
        patch_project=(tabulate_fill_buffers,),
    )
)
register_backend(
    HLSBackend(
        "Vivado",
        (
            VendorTool(
                "vivado_hls",
                "vivado_hls -f build_prj.tcl",
                "argument",
                "Xilinx Vivado HLS 2020.1 or older, source <Vivado>/settings64.sh",
            ),
        ),
        report_reader=read_reports,
        vivado_templates=True,
        # the io_parallel convolutions' generated im2col, a table in the C simulation only
        patch_project=(tabulate_fill_buffers,),
    )
)
register_backend(
    HLSBackend(
        "Catapult",
        (
            VendorTool(
                "catapult",
                "catapult -product ultra -shell -f build_prj.tcl",
                "none",
                "Siemens Catapult HLS",
            ),
        ),
        # hls4ml 1.3's Catapult softmax (ac_softmax_pwl) fails a static assertion on the
        # integer bits of exact logits types, whatever the implementation
        softmax_modes=("logits",),
        # the io_parallel convolutions' generated im2col, a table in the C simulation only
        # (fill_buffer); hls4ml 1.3's io_stream Concatenate of flat vectors writes a word too
        # many, left in a static channel for the next call to read (catapult_stream); its
        # hard_sigmoid ignores the layer's slope and shift, its io_parallel depthwise
        # convolution the padding and strides (catapult_templates)
        patch_project=(tabulate_fill_buffers, fix_concatenate_stream, fix_templates),
    )
)


def _quartus_softmax(settings: dict[str, Any]) -> dict[str, Any]:
    """The softmax settings for hls4ml 1.3's Quartus templates: signed types (its softmax
    refuses unsigned ones: one more bit, the sign, :func:`_signed_types`), and an
    ``exp_table_t`` that holds the sum of the exponentials. Quartus' ``softmax_stable`` adds
    them up in ``exp_table_t`` itself (Vivado's in ``accum``) and addresses the 1/x table
    with the top bits of that sum, so ``exp_table_t`` gets the integer bits of ``inv_inp_t``
    (the sum's type: ``[1, n]`` for ``n`` classes), keeping its fractional bits: with
    ``ap_fixed<19,2>`` a 3-class sum saturated at 2 and equal logits gave 0.5 each."""
    signed = _signed_types(settings)
    if "exp_table_t" in signed and "inv_inp_t" in signed:
        exp_t = FixedType.parse(signed["exp_table_t"])
        sum_t = FixedType.parse(signed["inv_inp_t"])
        if sum_t.integer > exp_t.integer:
            grown = exp_t.fractional + sum_t.integer
            signed["exp_table_t"] = FixedType(
                grown, sum_t.integer, exp_t.signed, exp_t.rounding, exp_t.saturation
            ).to_hls()
    return signed


register_backend(
    HLSBackend(
        "Quartus",
        (VendorTool("i++", "make myproject-fpga", "none", "Intel HLS Compiler (i++)"),),
        default_part="Arria10",
        softmax_override=_quartus_softmax,
        patch_project=(rewrite_softmax_tables,),
        # hls4ml 1.3's io_stream top function traces every layer by reading the *output*
        # stream before it is written (save_layer_output<result_t>(layer8_out, "d1", 3), the
        # output's size for every layer): the process died in the first event (a segmentation
        # fault on a 3-layer QKeras MLP). verify and emulate read the traces; the project
        # itself is written as hls4ml writes it.
        unsimulable_io=(
            (
                "io_stream",
                "hls4ml 1.3's Quartus io_stream project traces every layer from the output "
                "stream, which crashes its C simulation; use --io-type io_parallel with the "
                "Quartus backend to simulate, verify or emulate (hepfpga firmware without "
                "--compile writes the io_stream project)",
            ),
        ),
    )
)
