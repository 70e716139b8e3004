"""System shared memory regions (Triton's ``systemsharedmemory`` extension).

A client on the same host creates a POSIX shared memory object (``shm_open``; e.g. with
``tritonclient.utils.shared_memory``), writes its inputs there, and registers it under a name
with its key (``/name``), an offset and a byte size. Requests then name the region, a byte
size and an offset instead of carrying tensor bytes; outputs may be written to a region too.

The object is read and written through its file descriptor (``pread`` / ``pwrite``), never
mapped: its owner may shrink it at any moment (``ftruncate``), and touching a mapped page past
the new end kills the whole server with SIGBUS. Each use checks the object's current size
against the region (``fstat``; a region that no longer fits is refused with
``INVALID_ARGUMENT`` naming it), and a ``pread`` that comes back short (a shrink between the
check and the read) is refused the same way; a ``pwrite`` past a new end grows the object
again instead of faulting. Inputs are copied once into the request's buffer (what onnxruntime
reads, while the client may change the region), outputs once into the region.

The key must be a POSIX shared memory name (``/`` followed by a name without ``/``): the
object is opened under ``/dev/shm``, never elsewhere.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hepfpga.deploy.protocol import ErrorCode, RegionRef, RequestError

__all__ = ["SHM_ROOT", "Region", "SharedMemoryRegistry"]

#: Where Linux keeps POSIX shared memory objects (``shm_open("/x")`` is ``/dev/shm/x``).
SHM_ROOT = Path("/dev/shm")
_KEY = re.compile(r"^/[^/\x00]{1,254}$")


@dataclass
class Region:
    """A registered region: ``byte_size`` bytes at ``offset`` of the object ``key``."""

    name: str
    key: str
    offset: int
    byte_size: int
    fd: int  #: the object, open read-write; closed when the region is unregistered

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "key": self.key,
            "offset": self.offset,
            "byte_size": self.byte_size,
        }


class SharedMemoryRegistry:
    """The regions registered with one server, by name. Thread-safe."""

    def __init__(self) -> None:
        self._regions: dict[str, Region] = {}
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self._regions)

    def register(self, name: str, key: str, offset: int, byte_size: int) -> None:
        """Map ``byte_size`` bytes at ``offset`` of the object ``key`` as region ``name``."""
        if not name:
            raise RequestError(ErrorCode.INVALID_ARGUMENT, "a shared memory region needs a name")
        for what, value in (("offset", offset), ("byte_size", byte_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise RequestError(
                    ErrorCode.INVALID_ARGUMENT,
                    f"shared memory region '{name}': {what} {value!r} is not a byte count",
                )
        if not isinstance(key, str) or not _KEY.match(key) or key in ("/.", "/.."):
            raise RequestError(
                ErrorCode.INVALID_ARGUMENT,
                f"shared memory region '{name}': key {key!r} is not a POSIX shared memory "
                "name; accepted: '/' followed by a name without '/'",
            )
        with self._lock:
            if name in self._regions:
                raise RequestError(
                    ErrorCode.ALREADY_EXISTS,
                    f"shared memory region '{name}' already in manager",
                )
            try:
                fd = os.open(SHM_ROOT / key[1:], os.O_RDWR | os.O_NOFOLLOW)
            except OSError as exc:
                raise RequestError(
                    ErrorCode.NOT_FOUND,
                    f"Unable to open shared memory region: '{key}': {exc.strerror}",
                ) from None
            try:
                size = os.fstat(fd).st_size
                if byte_size == 0 or offset + byte_size > size:
                    raise RequestError(
                        ErrorCode.INVALID_ARGUMENT,
                        f"shared memory region '{name}': offset {offset} + byte_size "
                        f"{byte_size} is outside the {size} bytes of '{key}'",
                    )
            except BaseException:
                os.close(fd)
                raise
            self._regions[name] = Region(name, key, offset, byte_size, fd)

    def unregister(self, name: str = "") -> None:
        """Forget region ``name``, or every region when ``name`` is empty (as Triton; an
        unknown name is not an error). Requests already using it finish with it."""
        with self._lock:
            names = [name] if name else list(self._regions)
            for n in names:
                region = self._regions.pop(n, None)
                if region is not None:
                    # every read and write holds the lock: none is using the descriptor
                    os.close(region.fd)

    def status(self, name: str = "") -> list[dict[str, object]]:
        with self._lock:
            if not name:
                return [r.to_json() for r in self._regions.values()]
            region = self._regions.get(name)
        if region is None:
            raise RequestError(
                ErrorCode.NOT_FOUND,
                f"Unable to find system shared memory region: '{name}'",
            )
        return [region.to_json()]

    def _slice(self, ref: RegionRef, what: str) -> tuple[Region, int]:
        region = self._regions.get(ref.region)
        if region is None:
            raise RequestError(
                ErrorCode.INVALID_ARGUMENT,
                f"Unable to find shared memory region: '{ref.region}' for {what}",
            )
        if ref.offset < 0 or ref.byte_size < 0 or ref.offset + ref.byte_size > region.byte_size:
            raise RequestError(
                ErrorCode.INVALID_ARGUMENT,
                f"{what}: offset {ref.offset} + byte size {ref.byte_size} is outside the "
                f"{region.byte_size} bytes of shared memory region '{ref.region}'",
            )
        self._check_size(region, what)
        return region, region.offset + ref.offset

    @staticmethod
    def _check_size(region: Region, what: str, size: int | None = None) -> None:
        """Refuse a region whose object has shrunk below it since it was registered."""
        if size is None:
            size = os.fstat(region.fd).st_size
        end = region.offset + region.byte_size
        if size < end:
            raise RequestError(
                ErrorCode.INVALID_ARGUMENT,
                f"{what}: shared memory region '{region.name}' needs bytes {region.offset} to "
                f"{end} of '{region.key}', which now has {size} bytes (it shrank after the "
                "region was registered); accepted: unregister the region and register it again "
                "once the object holds it",
            )

    def check(self, ref: RegionRef, what: str) -> None:
        """Raise :class:`RequestError` unless ``ref`` lies inside a registered region whose
        object still holds it."""
        with self._lock:
            self._slice(ref, what)

    def read(self, ref: RegionRef, what: str) -> bytearray:
        """A copy of the bytes ``ref`` names (one ``pread``)."""
        with self._lock:
            region, start = self._slice(ref, what)
            buffer = bytearray(ref.byte_size)  # after the check: at most the region's size
            try:
                got = os.preadv(region.fd, [buffer], start) if ref.byte_size else 0
            except OSError as exc:
                raise _io_error(region, what, exc) from None
            if got != ref.byte_size:  # shrunk between the size check and the read
                self._check_size(region, what, start + got)
        return buffer

    def write(self, ref: RegionRef, array: np.ndarray, what: str) -> None:
        """Copy ``array`` to the start of the bytes ``ref`` names (one ``pwrite``)."""
        data = np.ascontiguousarray(array)
        if data.nbytes > ref.byte_size:
            raise RequestError(
                ErrorCode.INVALID_ARGUMENT,
                f"shared memory size specified with the request for {what} ({ref.byte_size} "
                f"bytes) should be at least {data.nbytes} bytes to hold the results",
            )
        view = memoryview(data).cast("B")  # type: ignore[arg-type]
        with self._lock:
            region, start = self._slice(ref, what)
            while view:  # pwrite may write less than asked; it never faults past the end
                try:
                    written = os.pwrite(region.fd, view, start)
                except OSError as exc:  # e.g. /dev/shm full when a shrunk object grows back
                    raise _io_error(region, what, exc) from None
                view, start = view[written:], start + written

    def close(self) -> None:
        self.unregister()


def _io_error(region: Region, what: str, exc: OSError) -> RequestError:
    return RequestError(
        ErrorCode.INTERNAL,
        f"{what}: shared memory region '{region.name}' ('{region.key}'): {exc.strerror}",
    )
