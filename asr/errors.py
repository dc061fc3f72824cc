"""The one exit-code mapping, and the one-line error messages every module and entry point gives.

Every error a user can cause is an :class:`AsrError` subclass carrying its exit code; modules raise their own
subclass (``AudioError``, ``ConfigError``, ...) of the matching family here. Entry points (the ``asr``
subcommands, the recipes, tools/) run through :func:`run_main`, which prints ``error: <one line>`` on stderr
and returns the code. The codes:

====  ==========================================================================
0     success
1     some audio could not be read (each file reported, the rest still processed)
2     usage: a wrong option or combination, a device that does not exist
3     a bad config or setting
4     a bad checkpoint or model file
5     a bad manifest or data set (missing, empty, all filtered out)
6     an output cannot be written (full disk, no permission, an output onto an input)
130   interrupted (Ctrl-C)
====  ==========================================================================
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable
from typing import TextIO

EXIT_OK = 0
EXIT_AUDIO = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_CHECKPOINT = 4
EXIT_DATA = 5
EXIT_OUTPUT = 6
EXIT_INTERRUPTED = 130


def first_line(e: BaseException) -> str:
    """The first non-empty line of an exception's message, or its type name."""
    for line in str(e).splitlines():
        if line.strip():
            return line.strip()
    return type(e).__name__


class AsrError(Exception):
    """An error the user can fix; its message is one line naming the file or setting and the problem."""

    exit_code = 1


class AudioFailure(AsrError, ValueError):
    """Audio that cannot be read."""

    exit_code = EXIT_AUDIO


class UsageError(AsrError, ValueError):
    """A wrong option, combination of options or device."""

    exit_code = EXIT_USAGE


class ConfigError(AsrError, ValueError):
    """A config or setting that cannot be used."""

    exit_code = EXIT_CONFIG


class ModelFileError(AsrError, ValueError):
    """A checkpoint or model file that cannot be loaded."""

    exit_code = EXIT_CHECKPOINT


class DataError(AsrError, ValueError):
    """A manifest or data set that cannot be used."""

    exit_code = EXIT_DATA


class OutputError(AsrError, OSError):
    """An output that cannot or must not be written; ``errno`` is the system's reason when there is one."""

    exit_code = EXIT_OUTPUT

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


def os_error_line(e: OSError) -> str:
    """One line naming the file: "PATH: reason"."""
    reason = e.strerror or first_line(e)
    return f"{e.filename}: {reason}" if e.filename is not None and str(e.filename) not in reason else reason


def exit_code(e: BaseException) -> int:
    """The exit code of an exception reaching an entry point."""
    if isinstance(e, AsrError):
        return e.exit_code
    if isinstance(e, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(e, OSError):
        return EXIT_OUTPUT
    raise e


def message(e: BaseException) -> str:
    """The one line printed for an exception reaching an entry point."""
    if isinstance(e, KeyboardInterrupt):
        return "interrupted"
    if isinstance(e, OSError) and not isinstance(e, AsrError):
        return os_error_line(e)
    return first_line(e)


class _Stdout:
    """Standard output whose write errors (a full disk, an I/O error) say they are standard output's."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def _guard(self, call: Callable[[], int | None]) -> int | None:
        try:
            return call()
        except BrokenPipeError:
            raise
        except OSError as e:
            reason = e.strerror or errno.errorcode.get(e.errno or 0, "write failed")
            raise OutputError(f"standard output: {reason}") from None

    def write(self, text: str) -> int | None:
        return self._guard(lambda: self.stream.write(text))

    def flush(self) -> None:
        self._guard(self.stream.flush)

    def __getattr__(self, name: str) -> object:
        return getattr(self.stream, name)


def run_main(main: Callable[[], int | None]) -> int:
    """Run an entry point: its return code, or the code and one-line message of the error that ended it.

    Errors that are not the user's (a bug) keep their traceback. Writing to a full standard output is exit 6;
    a reader that goes away (``| head``) is not an error.
    """
    real = sys.stdout
    sys.stdout = _Stdout(real)
    try:
        code = main() or EXIT_OK
        sys.stdout.flush()
    except BrokenPipeError:
        code = EXIT_OK
        sys.stdout = real = open(os.devnull, "w")  # noqa: SIM115 - the interpreter flushes stdout at exit
    except (AsrError, OSError, KeyboardInterrupt) as e:
        code = exit_code(e)
        print(f"error: {message(e)}", file=sys.stderr)
        if isinstance(e, OutputError) and str(e).startswith("standard output"):
            real = open(os.devnull, "w")  # noqa: SIM115 - what is left in its buffer cannot be written
    finally:
        sys.stdout = real
    return code
