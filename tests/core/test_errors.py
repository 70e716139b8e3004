"""The one boundary for failures from outside hepfpga (hepfpga.errors, hepfpga.cli.app.main):
interrupts in any disguise, operating-system errors by number, third-party exceptions by
family, and real bugs kept visible."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable

import click
import pytest

from hepfpga.cli import cli, main
from hepfpga.errors import (
    ConfigError,
    ExternalError,
    FileSystemError,
    disk_full,
    disk_full_as_error,
    external_error,
    file_system_error,
    interrupted,
)


def _chained(outer: Callable[[], BaseException], inner: BaseException) -> BaseException:
    """``outer()`` raised while handling ``inner`` (its ``__context__``), as an import that
    is interrupted raises it."""
    try:
        try:
            raise inner
        except BaseException:
            raise outer()  # noqa: B904 - the implicit context is what is tested
    except BaseException as exc:
        return exc


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (KeyboardInterrupt(), True),
        (_chained(lambda: ImportError("initialization failed"), KeyboardInterrupt()), True),
        (
            _chained(
                lambda: RuntimeError("outer"),
                _chained(lambda: ImportError("inner"), KeyboardInterrupt()),
            ),
            True,
        ),
        (ImportError("No module named 'onnxruntime'"), False),
        (_chained(lambda: ValueError("x"), OSError("y")), False),
    ],
    ids=["plain", "import-error-from-interrupt", "two-levels", "import-error", "other"],
)
def test_an_interrupt_is_found_in_any_disguise(exc: BaseException, expected: bool) -> None:
    assert interrupted(exc) is expected


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), True),
        (OSError(errno.EFBIG, "File too large"), True),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), True),
        (OSError(errno.EACCES, "Permission denied"), False),
        (RuntimeError("(sqlite3.OperationalError) database or disk is full"), True),
        ("as: out.o: No space left on device\nfatal error", True),
        ("error: 'foo' was not declared in this scope", False),
        (_chained(lambda: RuntimeError("hls4ml failed"), OSError(errno.ENOSPC, "full")), True),
    ],
)
def test_a_full_disk_is_recognised(exc: BaseException | str, expected: bool) -> None:
    assert disk_full(exc) is expected


@pytest.mark.parametrize(
    ("number", "needles"),
    [
        (errno.ENOSPC, ("the disk is full", "/data/out.npz", "free space")),
        (errno.EFBIG, ("the disk is full", "ulimit -f")),
        (errno.EACCES, ("permission denied", "/data/out.npz")),
        (errno.EROFS, ("read-only",)),
        (errno.ENOENT, ("no such file",)),
        (errno.EMFILE, ("too many open files", "ulimit -n")),
        (errno.EIO, ("input/output error",)),
    ],
)
def test_an_os_error_says_what_to_do(number: int, needles: tuple[str, ...]) -> None:
    exc = OSError(number, os.strerror(number), "/data/.out.npz.partial")
    error = file_system_error(exc, doing="writing", path="/data/out.npz")
    assert isinstance(error, FileSystemError) and error.errno == number
    text = str(error).lower()
    assert "\n" not in text and "writing /data/out.npz failed" in text
    assert all(needle.lower() in text for needle in needles), text


def test_disk_full_inside_a_block_names_the_destination() -> None:
    with (
        pytest.raises(FileSystemError, match=r"writing the model out\.onnx failed: the disk"),
        disk_full_as_error("writing the model", "out.onnx"),
    ):
        raise RuntimeError("write failed: [Errno 28] No space left on device")
    with (
        pytest.raises(PermissionError),  # only a full disk is translated there
        disk_full_as_error("writing the model", "out.onnx"),
    ):
        raise PermissionError(errno.EACCES, "Permission denied")


def _sqlalchemy_error() -> BaseException:
    sqlalchemy = pytest.importorskip("sqlalchemy")
    engine = sqlalchemy.create_engine("sqlite://")
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT * FROM no_such_table"))
    except Exception as exc:
        return exc
    raise AssertionError("the query should fail")


def _bad_zip() -> BaseException:
    try:
        import io

        zipfile.ZipFile(io.BytesIO(b"not a zip file"))
    except zipfile.BadZipFile as exc:
        return exc
    raise AssertionError("not a zip file")


@pytest.mark.parametrize(
    ("make", "kind", "needles"),
    [
        (_sqlalchemy_error, ExternalError, ("the database (sqlalchemy)", "no_such_table", "storage url")),  # noqa: E501
        (_bad_zip, ExternalError, ("zip", "corrupt")),
        (lambda: subprocess.CalledProcessError(2, ["make"]), ExternalError, ("program", "make")),
        (lambda: MemoryError(), ExternalError, ("out of memory", "--max-jets")),
        (lambda: OSError(errno.ENOSPC, "No space left on device", "/x"), FileSystemError, ("disk is full", "/x")),  # noqa: E501
        (lambda: ConfigError("bad", path="a.b"), ConfigError, ("a.b",)),
    ],
    ids=["sqlalchemy", "zipfile", "subprocess", "memory", "oserror", "ours"],
)  # fmt: skip
def test_third_party_failures_become_one_error(
    make: Callable[[], BaseException], kind: type, needles: tuple[str, ...]
) -> None:
    error = external_error(make())
    assert isinstance(error, kind)
    assert all(n.lower() in str(error).lower() for n in needles), str(error)


@pytest.mark.parametrize(
    "exc", [ValueError("a bug"), KeyError("k"), AttributeError("x"), OSError("no errno")]
)
def test_a_bug_is_not_disguised_as_an_outside_failure(exc: BaseException) -> None:
    assert external_error(exc) is None


@pytest.fixture
def failing_command() -> Callable[[BaseException], None]:
    """A command added to the root group for the test, raising what it is given."""
    raised: list[BaseException] = []

    @click.command("raise-for-test")
    def command() -> None:
        raise raised[0]

    cli.add_command(command)

    def arm(exc: BaseException) -> None:
        raised[:] = [exc]

    yield arm
    cli.commands.pop("raise-for-test")


@pytest.mark.parametrize(
    ("exc", "code", "line"),
    [
        (KeyboardInterrupt(), 130, "interrupted"),
        (_chained(lambda: ImportError("initialization failed"), KeyboardInterrupt()), 130, "interrupted"),  # noqa: E501
        (OSError(errno.ENOSPC, "No space left on device", "/data/x"), 2, "error: reading or writing /data/x failed: the disk is full"),  # noqa: E501
        (ConfigError("bad value", path="x.y"), 2, "error: at 'x.y': bad value"),
        (ValueError("a bug"), 1, "error: internal error: ValueError: a bug (a bug in hepfpga: run the command again with -v"),  # noqa: E501
    ],
    ids=["interrupt", "interrupt-inside-import", "disk-full", "ours", "bug"],
)  # fmt: skip
def test_main_is_the_boundary(
    failing_command: Callable[[BaseException], None],
    capsys: pytest.CaptureFixture[str],
    exc: BaseException,
    code: int,
    line: str,
) -> None:
    failing_command(exc)
    assert main(["raise-for-test"]) == code
    err = capsys.readouterr().err
    lines = [text for text in err.splitlines() if text.strip()]
    assert len(lines) == 1 and lines[0].startswith(line), err
    assert "Traceback" not in err


def test_a_bug_shows_its_traceback_under_v(
    failing_command: Callable[[BaseException], None],
) -> None:
    failing_command(ValueError("a bug"))
    with pytest.raises(ValueError, match="a bug"):
        main(["-v", "raise-for-test"])


def test_ctrl_c_while_the_commands_load_exits_130() -> None:
    """The console entry point's import of the commands is inside the boundary too."""
    code = (
        "import builtins, sys\n"
        "real = builtins.__import__\n"
        "def interrupted(name, *args, **kwargs):\n"
        "    if name == 'hepfpga.cli.app' or name.endswith('cli.compare'):\n"
        "        raise KeyboardInterrupt\n"
        "    return real(name, *args, **kwargs)\n"
        "builtins.__import__ = interrupted\n"
        "from hepfpga.cli import main\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (done.returncode, done.stderr.strip()) == (130, "interrupted"), done.stderr
