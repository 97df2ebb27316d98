"""Writing output files safely (whole or not at all, with the umask's permissions), and where they go by default.

Why a module of its own: captures, redacted copies, sidecars, result tables, figures and caches are all written
the same way (a temporary file beside the target, then one rename): :func:`write_atomically` for bytes or text
in hand, :func:`tmp_beside` + :func:`publish` for files written by someone else (tcpdump, mmap, matplotlib).

Default folders (``data/cache``, ``data/results``, ``data/figures``, ``build``, ``notebooks``) never depend on
the working directory: they sit under :func:`project_root`, which is ``$MAILSTUDY_ROOT`` when set, else the
source checkout that holds this package (the folder with ``pyproject.toml``), else ``$XDG_DATA_HOME/mailstudy``
(``~/.local/share/mailstudy``) for an installed copy. Every function that writes there also takes an explicit
folder.

Every output is checked before any work starts (:func:`check_output`): it never replaces a folder, a device,
a FIFO or an input. Temporary files are named ``.NAME.PID.XXXX.part``; one whose owner no longer runs (a
``kill -9``) is removed the next time an output is written into the same folder.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from pathlib import Path

from mailstudy.errors import MailstudyError
from mailstudy.processes import owner_gone, uninterrupted


class OutputError(MailstudyError, ValueError):
    """An output that must not be written (it would damage what is there, or cannot be written at all)."""


def sidecar_path(path: str | os.PathLike) -> Path:
    """``FILE.pcap`` -> ``FILE.pcap.json``: the JSON description beside a capture."""
    return Path(f"{os.fspath(path)}.json")


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def check_output(path: str | os.PathLike, *, inputs: tuple = (), force: bool = True,
                 sidecar: bool = False, what: str = "output") -> Path:
    """Refuse (:class:`OutputError`, one line) an output before any work is done, when writing it would
    replace something that is not a regular file (a folder, a device such as /dev/null, a FIFO, a socket),
    overwrite one of ``inputs`` or an input's sidecar, overwrite an existing file without ``force``, or fail
    for want of a writable folder (tried by creating a temporary file there). With ``sidecar`` the same holds
    for ``PATH.json``; neither ``PATH`` nor ``PATH.json`` may name an input or an input's sidecar in any case.
    Returns ``path`` as a Path."""
    path = Path(path)
    protected = [p for i in inputs for p in (Path(i), sidecar_path(i))]
    for t in (path, sidecar_path(path)):
        for p in protected:
            if _same(t, p):
                raise OutputError(f"{what} {t} would overwrite the input {p}; choose another name")
    for t in [path, sidecar_path(path)] if sidecar else [path]:
        try:
            st = os.stat(t)
        except FileNotFoundError:
            st = None
        except OSError as exc:
            raise OutputError(f"cannot write {what} {t}: {exc.strerror or exc}") from None
        if st is not None and stat.S_ISDIR(st.st_mode):
            raise OutputError(f"{what} {t} is a folder; give a file name")
        if st is not None and not stat.S_ISREG(st.st_mode):
            raise OutputError(f"{what} {t} exists and is not a regular file (a device, FIFO or socket); "
                              f"mailstudy only replaces regular files")
        if st is not None and not force:
            raise OutputError(f"{what} {t} already exists; choose another name or add --force to overwrite it")
    folder = path.parent
    if not folder.is_dir():
        raise OutputError(f"cannot write {what} {path}: folder {folder} does not exist")
    try:
        with uninterrupted():
            tmp_beside(path).unlink()  # the real test: permissions, a read-only file system, a full inode table
    except OSError as exc:
        raise OutputError(f"cannot write {what} in {folder}: {exc.strerror or exc}") from None
    return path


def check_folder(path: str | os.PathLike, what: str = "folder") -> Path:
    """Refuse (:class:`OutputError`, one line) a folder to write into before any work is done: it must be a
    folder already or one that can be made (never a file, a device such as /dev/null or a FIFO), and writable
    (tried by creating a temporary file there). Makes the folder; returns it as a Path."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"{what} {path} exists and is not a folder; give a folder") from None
    except OSError as exc:
        raise OutputError(f"cannot create {what} {path}: {exc.strerror or exc}") from None
    if not path.is_dir():  # a symbolic link to something else
        raise OutputError(f"{what} {path} exists and is not a folder; give a folder")
    try:
        with uninterrupted():
            tmp_beside(path / "probe").unlink()
    except OSError as exc:
        raise OutputError(f"cannot write in {what} {path}: {exc.strerror or exc}") from None
    return path


def sweep_parts(path: str | os.PathLike) -> None:
    """Remove the unfinished ``.NAME.PID.XXXX.part`` files of ``path`` whose owner no longer runs."""
    folder, name = Path(path).parent, Path(path).name
    pattern = re.compile(rf"^\.{re.escape(name)}\.(\d+)\.[^.]+\.part$")
    try:
        entries = os.listdir(folder)
    except OSError:
        return
    for entry in entries:
        m = pattern.match(entry)
        if m and owner_gone(m.group(1)):
            try:
                os.unlink(folder / entry)
            except OSError:
                pass


def project_root() -> Path:
    """Where default folders live (see the module doc): ``$MAILSTUDY_ROOT``, the checkout, or the user data dir."""
    env = os.environ.get("MAILSTUDY_ROOT")
    if env:
        return Path(env).expanduser().resolve()
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file():
        return checkout
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home) / "mailstudy"


def data_dir(kind: str) -> Path:
    """``project_root()/data/KIND``: the default folder for ``cache``, ``results`` or ``figures``."""
    return project_root() / "data" / kind


def tmp_beside(path: Path) -> Path:
    """A new empty hidden temporary file in ``path``'s folder (same file system, so the final rename is atomic)."""
    path = Path(path)
    sweep_parts(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".part")
    os.close(fd)
    return Path(tmp)


def publish(tmp: Path | str, path: str | os.PathLike) -> None:
    """Give a finished temporary file the usual permissions (mkstemp makes it 0600) and move it into place.

    Refuses (and removes ``tmp``) when ``path`` has meanwhile become something other than a regular file."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        os.unlink(tmp)
        raise OutputError(f"{path} exists and is not a regular file; not replaced")
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o666 & ~mask)
    os.replace(tmp, path)


def write_atomically(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` whole or not at all, with the umask's mode; returns the path."""
    path = Path(path)
    tmp = tmp_beside(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        publish(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
