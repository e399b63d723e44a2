"""User files in and out: one bounded reader and one atomic writer.

Every file nhipl reads on a user's behalf (policies, requests, traces, imported
runs, decision logs, configs) goes through :func:`read_text` or
:func:`read_bytes`; every file it writes goes through :func:`write_atomically`.
Both fail with :class:`~nhipl.errors.LocatedError` (``file: message`` for a problem
with the file itself, ``file:line:col: message`` for a place in it), never with a
Python exception a user would have to decode.

Reading is bounded: a regular file or a pipe is read up to :data:`MAX_INPUT_BYTES`,
anything else (a device such as ``/dev/zero``, a socket, a folder) is refused
before a byte is read. Writing never replaces an existing file unless asked
(``force``), never follows a symlink (a link in the way is replaced, not its
target), and leaves no temporary file behind, whatever goes wrong.
"""

from __future__ import annotations

import os
import select
import stat
import tempfile
from contextlib import contextmanager
from contextvars import ContextVar
from typing import BinaryIO, Iterator

from .errors import LocatedError

MAX_INPUT_BYTES = 64 << 20
"""The largest file read whole: policy files, requests, configs, imported runs, decision logs."""

MAX_LINE_BYTES = 16 << 20
"""The longest line of a streamed JSON-lines file (a trace), which may itself be of any length."""

_MIB = 1 << 20


def _too_large(source: str, limit: int) -> LocatedError:
    size = f"{limit // _MIB} MiB" if limit >= _MIB else f"{limit} bytes"
    return LocatedError(
        source, None, None, f"the input is larger than the {size} limit", code="too-large",
        help="split it into smaller files",
    )


def _read_error(path: str, err: OSError) -> LocatedError:
    reason = (err.strerror or str(err)).lower()
    return LocatedError(path, None, None, f"cannot read file: {reason}", code="file-error")


def open_input(path: str) -> BinaryIO:
    """``path`` opened for reading in binary, when it is a regular file or a pipe."""
    if not path:
        raise LocatedError("<empty path>", None, None, "no such file: the path is empty", code="file-not-found")
    # Non-blocking, so that opening a device or a pipe cannot hang before its type is known.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise LocatedError(path, None, None, "no such file", code="file-not-found") from None
    except IsADirectoryError:
        raise LocatedError(path, None, None, "is a folder, not a file", code="file-error") from None
    except OSError as err:
        raise _read_error(path, err) from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise LocatedError(path, None, None, "is a folder, not a file", code="file-error")
        if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
            raise LocatedError(
                path, None, None, "not a regular file (a device or a socket); refusing to read it", code="file-error"
            )
        if stat.S_ISFIFO(mode):  # a pipe: read it as `cat` would, waiting for its writer
            _wait_for_writer(fd)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _wait_for_writer(fd: int) -> None:
    """Make the pipe ``fd`` (opened without blocking) blocking, once a writer has come: its
    data is there, or it has come and gone. The same descriptor is kept, so what a writer
    wrote before this call is never lost (opening the pipe again would wait for a writer
    that may already have left)."""
    os.set_blocking(fd, True)
    if hasattr(select, "poll"):  # a pipe without a writer since it was opened polls as neither
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLHUP)
        poller.poll()


def read_stream(stream: BinaryIO, source: str, limit: int | None = None) -> bytes:
    """At most ``limit`` bytes of ``stream`` (default :data:`MAX_INPUT_BYTES`); more is an
    error naming ``source``."""
    limit = MAX_INPUT_BYTES if limit is None else limit
    try:
        data = stream.read(limit + 1)
    except OSError as err:
        raise _read_error(source, err) from None
    if len(data) > limit:
        raise _too_large(source, limit)
    return data


def read_bytes(path: str, limit: int | None = None) -> bytes:
    """The bytes of the file at ``path`` (see the module's rules)."""
    with open_input(path) as fh:
        return read_stream(fh, path, limit)


def decode(data: bytes, source: str) -> str:
    """UTF-8 ``data`` as text (a leading byte-order mark dropped); a binary file is an error
    at the first byte that is not text."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise _not_text(data, err.start, source) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return text


def _not_text(data: bytes, offset: int, source: str) -> LocatedError:
    before = data[:offset]
    line = before.count(b"\n") + 1
    column = offset - (before.rfind(b"\n") + 1) + 1
    return LocatedError(source, line, column, "not a UTF-8 text file; is it a binary file?", code="not-text")


def read_text(path: str, limit: int | None = None) -> str:
    """The text of the UTF-8 file at ``path``."""
    return decode(read_bytes(path, limit), path)


def lines(text: str) -> list[str]:
    """``text`` cut into lines at ``\\n`` (and ``\\r\\n``) only: U+2028, U+2029, U+0085 and the
    other characters :meth:`str.splitlines` also breaks at are ordinary characters inside a
    JSON string or a policy string, not line ends."""
    out = text.split("\n")
    if out and out[-1] == "":
        out.pop()
    return [line[:-1] if line.endswith("\r") else line for line in out]


def write_atomically(path: str, content: str | bytes, *, force: bool = False, mode: int | None = None) -> None:
    """Write ``content`` to ``path`` through a temporary file in the same folder.

    Without ``force`` an existing ``path`` (a file, a folder or a symlink, even a dangling
    one) is never replaced. With it, a symlink at ``path`` is itself replaced, never the
    file it points to. Readers see the old file or the new one, never half of it; the
    temporary file is removed on every failure."""
    if isinstance(content, str):
        try:
            data = content.encode("utf-8")
        except UnicodeEncodeError as err:
            raise LocatedError(
                path, None, None, f"cannot write file: the text holds a character that is not valid Unicode "
                f"(U+{ord(content[err.start]):04X})", code="file-error",
            ) from None
    else:
        data = content
    if os.path.isdir(path) and not os.path.islink(path):
        raise LocatedError(path, None, None, "is a folder, not a file", code="file-error")
    if not force and os.path.lexists(path):
        raise _exists(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".nhipl-", suffix=".tmp")
    except OSError as err:
        raise _write_error(path, err) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())  # on disk before it takes the target's name
        os.chmod(tmp, mode if mode is not None else 0o666 & ~_umask())
        if force:
            os.replace(tmp, path)
        else:
            _link_new(tmp, path)
    except BaseException as err:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(err, FileExistsError):
            raise _exists(path) from None
        if isinstance(err, OSError):
            raise _write_error(path, err) from None
        raise


def refuse_existing(*paths: str | None, force: bool = False) -> None:
    """Fail, before any work is done, when one of ``paths`` exists and ``force`` is not set."""
    for path in paths:
        if path and not force and os.path.lexists(path):
            raise _exists(path)


def _link_new(tmp: str, path: str) -> None:
    """Move ``tmp`` to ``path`` only if nothing is there (atomically, where links exist)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: check and replace
        if os.path.lexists(path):
            raise FileExistsError(path) from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def _exists(path: str) -> LocatedError:
    return LocatedError(path, None, None, "the output file exists; not overwriting it", code="file-exists",
                        help="pass `--force` to replace it")


def _write_error(path: str, err: OSError) -> LocatedError:
    return LocatedError(path, None, None, f"cannot write file: {(err.strerror or str(err)).lower()}", code="file-error")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_inside(folder: str, path: str) -> None:
    """Refuse ``path`` unless it stays inside ``folder`` once symlinks are resolved (a
    symlink at ``path`` itself is allowed: :func:`write_atomically` replaces links, it does
    not follow them)."""
    parent = os.path.realpath(os.path.dirname(os.path.abspath(path)))
    if parent != os.path.realpath(folder) and not parent.startswith(os.path.realpath(folder) + os.sep):
        raise LocatedError(path, None, None, f"resolves outside the folder `{folder}`; not writing there", code="file-error")


imports_outside: ContextVar[bool] = ContextVar("nhipl_imports_outside", default=False)


@contextmanager
def imports_outside_allowed(allowed: bool = True) -> Iterator[None]:
    """Within the block, a policy's ``import`` may name a ``.nhipl`` file anywhere, not only
    under the importing file's folder or the current folder (the command line's
    ``--allow-import-outside``)."""
    token = imports_outside.set(allowed)
    try:
        yield
    finally:
        imports_outside.reset(token)
