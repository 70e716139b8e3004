"""What every library of an emulator package shares: the namespace placeholder, the content
hash that names the namespace, and the loader's two exported entry points
(:mod:`hepfpga.firmware.emulator_lib` for the network, :mod:`hepfpga.firmware.emulator_lib_bdt`
for a run's BDT)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

__all__ = ["ENTRY_POINTS", "PLACEHOLDER", "rename_namespace", "set_namespace", "source_hash"]

#: written where the namespace goes; replaced by ``<name>_<version>_<hash>`` once the sources
#: (holding the placeholder, so the hash does not depend on itself) are hashed
PLACEHOLDER = "HEPFPGA_EMULIB_NAMESPACE"

# the end of every model source: the namespace closed, and the loader's two entry points
# (exported: the version script hides everything else)
ENTRY_POINTS = """
}}  // namespace {ns}

extern "C" __attribute__((visibility("default"))) hls4mlEmulator::Model* create_model() {{
    return new {ns}::{cls};
}}

extern "C" __attribute__((visibility("default"))) void destroy_model(hls4mlEmulator::Model* m) {{
    delete m;
}}
"""


def rename_namespace(text: str, old: str, new: str) -> str:
    """The C++ namespace ``old``, as declared (``namespace old {``) and as qualified
    (``old::``), becomes ``new``; the word elsewhere (comments, strings) stays."""
    text = re.sub(rf"\bnamespace\s+{old}\b", f"namespace {new}", text)
    return re.sub(rf"\b{old}\b(?=\s*(::|\{{))", new, text)


def source_hash(root: Path) -> str:
    """SHA-256 of every file under ``root`` (relative path and bytes), in path order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def set_namespace(root: Path, namespace: str, skip: str = "ap_types") -> None:
    """Replace :data:`PLACEHOLDER` by ``namespace`` in every file under ``root`` except the
    folder ``skip`` (the ``ap_fixed`` headers, copied verbatim)."""
    for path in root.rglob("*"):
        if path.is_file() and path.parts[len(root.parts)] != skip:
            text = path.read_text(encoding="utf-8")
            if PLACEHOLDER in text:
                path.write_text(text.replace(PLACEHOLDER, namespace))
