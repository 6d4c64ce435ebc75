"""Atomic file writes: a temp file in the same folder, fsync, then rename over the target."""

from __future__ import annotations

import json
import os
import secrets
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from keras_legc.errors import MissingFileError, OutputExistsError


def check_writable(path: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse an existing output unless ``overwrite``; create the parent folder."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(
            f"{path} already exists and would be overwritten. Fix: choose another path, or pass "
            "overwrite=True (CLI: --force) to replace it."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def atomic_write(
    path: str | os.PathLike,
    write: Callable[[IO[bytes]], Any],
    *,
    overwrite: bool = False,
) -> Path:
    """Call ``write(fileobj)`` on a temp file and rename it to ``path`` only once it is complete.

    A crash at any point leaves either the previous file or none, never a half-written one. A
    temp file that an earlier, interrupted write of the same ``path`` left behind is removed here,
    with a warning that says so.
    """
    path = check_writable(path, overwrite)
    removed = remove_stale_temp_files(path)
    if removed:
        from keras_legc.errors import LegcWarning

        warnings.warn(
            f"found {len(removed)} incomplete temp file(s) from an interrupted earlier write of "
            f"{path} ({', '.join(p.name for p in removed)}) and removed them; "
            + ("the previous complete file was kept until now." if path.exists() else
               "there was no complete file."),
            LegcWarning,
            stacklevel=3,
        )  # fmt: skip
    fd, tmp = create_temp_file(path)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno is not None:
            kept = "the previous file is kept" if path.exists() else "nothing was written"
            raise type(exc)(
                exc.errno,
                f"could not write {path}: {exc.strerror} (disk full, quota or file size limit?); "
                f"{kept} and the partial temp file was removed. Fix: free space and try again",
            ) from exc
        raise
    return path


def create_temp_file(path: str | os.PathLike, suffix: str = ".tmp") -> tuple[int, str]:
    """Create a new, empty temp file beside ``path`` for writing; returns ``(fd, temp_path)``.

    Unlike :func:`tempfile.mkstemp` (always 0600), the file gets the mode a plain ``open(path,
    "w")`` would give: 0o666 masked by the umask (and any default ACL), applied by the kernel at
    creation. The rename keeps that mode, so the final file is as readable as ``numpy.save``'s or
    Keras's, not private to the owner.

    Args:
        path: the final file; the temp file is ``.<name>.<random><suffix>`` in its folder, which
            :func:`stale_temp_files` recognises.
        suffix: ends the temp file's name (``.tmp``, or ``.tmp.keras`` for Keras, which needs the
            extension).

    Returns:
        An open, write-only file descriptor and the temp file's path.

    Example:
        >>> fd, tmp = create_temp_file("out/model.json")  # doctest: +SKIP
    """
    path = Path(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = str(path.parent / f".{path.name}.{secrets.token_hex(4)}{suffix}")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temp file name beside {path}")  # pragma: no cover


def stale_temp_files(path: str | os.PathLike) -> list[Path]:
    """Temp files that an interrupted :func:`atomic_write` of ``path`` left behind.

    A process killed (SIGKILL, power loss) between creating its temp file and the rename leaves
    ``.<name>.<random>.tmp`` beside ``path``; ``path`` itself is then still the previous complete
    file, or absent.
    """
    path = Path(path)
    if not path.parent.is_dir():
        return []
    return sorted(path.parent.glob(f".{path.name}.*.tmp")) + sorted(
        path.parent.glob(f".{path.name}.*.tmp.keras")
    )


def remove_stale_temp_files(path: str | os.PathLike) -> list[Path]:
    """Delete :func:`stale_temp_files` of ``path``; returns what was removed."""
    removed = []
    for tmp in stale_temp_files(path):
        try:
            tmp.unlink()
            removed.append(tmp)
        except FileNotFoundError:  # pragma: no cover - raced with another cleaner
            pass
    return removed


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, overwrite: bool = False) -> Path:
    return atomic_write(path, lambda f: f.write(data), overwrite=overwrite)


def atomic_write_json(path: str | os.PathLike, obj: Any, *, overwrite: bool = False) -> Path:
    text = json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n"
    return atomic_write_bytes(path, text.encode(), overwrite=overwrite)


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_npz(
    path: str | os.PathLike,
    meta: dict,
    arrays: dict,
    *,
    overwrite: bool = False,
    compress: bool = True,
) -> Path:
    """Write ``arrays`` plus a JSON ``meta`` record into one ``.npz``, atomically.

    Streams into the temp file (numpy writes big or non-contiguous arrays in 16 MiB pieces), so
    saving never holds a second in-memory copy of the data.
    """
    import numpy as np

    save = np.savez_compressed if compress else np.savez

    def write(f):
        save(f, __meta__=np.array(json.dumps(meta, default=_json_default)), **arrays)

    return atomic_write(path, write, overwrite=overwrite)


def read_npz(
    path: str | os.PathLike,
    fmt: str,
    version: int,
    types: dict[str, Any] | None = None,
) -> tuple[dict, dict]:
    """Read a file written by :func:`write_npz`; checks its ``format``, ``version`` and structure.

    Every array's ``.npy`` header (shape, dtype) is checked against the size the archive declares
    for it before anything is allocated, so a corrupt or hostile file claiming 10^12 weights is
    refused without touching that memory. The meta record must be a JSON object whose ``layers``
    (if any) is a list of names and whose ``shapes`` (if any) maps each of them to non-negative
    integer dimensions; ``types`` names further fields and the types they must have.

    Args:
        path: the ``.npz``.
        fmt: the ``format`` its meta must name.
        version: the newest format version this reader understands.
        types: ``{field: spec}`` the meta's fields must have where present (see
            :func:`check_meta`).

    Returns:
        ``(meta, {name: array})``.

    Raises:
        MissingFileError: ``path`` does not exist (a ``FileNotFoundError`` too).
        ValueError: (with the reason) the file is not a readable ``fmt`` file of a version <=
            ``version``; callers turn that into their own ``keras_legc`` error.

    Example:
        >>> meta, arrays = read_npz("mask.npz", "keras_legc.mask", 1)  # doctest: +SKIP
    """
    import zipfile

    import numpy as np

    if not Path(path).exists():
        raise MissingFileError(
            f"{path} does not exist. Fix: pass the path of a file written by keras_legc "
            f"({fmt.removeprefix('keras_legc.')} files are .npz archives)."
        )
    if not zipfile.is_zipfile(path):  # np.load would also take a .npy or a text file
        raise ValueError("unreadable (not an .npz archive: truncated, or another kind of file)")
    try:
        with np.load(path, allow_pickle=False) as data:
            check_npz_headers(data.zip)
            meta = json.loads(str(data["__meta__"]))
            arrays = {k: data[k] for k in data.files if k != "__meta__"}
    except Exception as exc:  # noqa: BLE001 - zipfile/zlib/numpy raise many kinds on bad bytes
        raise ValueError(f"unreadable ({type(exc).__name__}: {exc})") from exc
    if not isinstance(meta, dict):
        raise ValueError(f"its meta record is a {type(meta).__name__}, not a JSON object")
    if meta.get("format") != fmt:
        raise ValueError(f"not a {fmt} file (format {meta.get('format')!r})")
    if not isinstance(meta.get("version", 0), int):
        raise ValueError(f"format version {meta.get('version')!r} is not an integer")
    if meta.get("version", 0) > version:
        raise ValueError(
            f"format version {meta['version']} is newer than this keras_legc reads ({version}); "
            "upgrade keras-legc"
        )
    check_meta(meta, types)
    for name, arr in arrays.items():
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"array {name!r} holds {arr.dtype}, not numbers")
    return meta, arrays


#: Deflate expands at most ~1032x; a zip member claiming more than this times its compressed size
#: is a zip bomb or a lie, refused before it is inflated.
MAX_INFLATE_RATIO = 1100


def check_npz_headers(archive) -> None:
    """Raise ValueError if a member's ``.npy`` header claims more data than the archive holds.

    Reads only the headers, so a corrupt or hostile ``.npz`` claiming 10^12 values (or a zip
    bomb) is refused before numpy allocates for it. edge/bench.py has the same check (it imports
    nothing from keras_legc, so that it can be copied to a device alone).

    Args:
        archive: the ``zipfile.ZipFile`` of an ``np.load``-ed ``.npz`` (``NpzFile.zip``).

    Example:
        >>> with np.load("history.npz") as data:  # doctest: +SKIP
        ...     check_npz_headers(data.zip)
    """
    import numpy as np

    for info in archive.infolist():
        if info.compress_type != 0 and info.file_size > MAX_INFLATE_RATIO * max(
            info.compress_size, 1
        ):
            raise ValueError(
                f"member {info.filename!r} claims {info.file_size} bytes from "
                f"{info.compress_size} compressed: not a real array"
            )
        with archive.open(info) as f:
            major, _ = np.lib.format.read_magic(f)
            if major not in (1, 2):
                raise ValueError(f"member {info.filename!r} is .npy version {major}")
            read_header = np.lib.format.read_array_header_1_0 if major == 1 else (
                np.lib.format.read_array_header_2_0
            )  # fmt: skip
            shape, _, dtype = read_header(f)
            header = f.tell()
        claimed = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if claimed > info.file_size - header:
            raise ValueError(
                f"member {info.filename!r} claims shape {shape} of {dtype} ({claimed} bytes) but "
                f"holds {max(info.file_size - header, 0)} bytes: truncated or forged header"
            )


def check_meta(meta: dict, types: dict[str, Any] | None = None) -> None:
    """Raise ValueError unless ``meta``'s ``layers``/``shapes``/``info`` and ``types`` fields are
    well-formed.

    Args:
        meta: a manifest or index read from disk (untrusted).
        types: ``{field: spec}`` the fields must have where present; a spec is a type, a tuple
            of types, ``[type]`` (a list of them) or :class:`IntIn` (``bool`` never passes for
            ``int``).

    Example:
        >>> check_meta({"layers": ["a"], "shapes": {"a": [2, 3]}, "window": 5}, {"window": int})
    """
    for key, want in (types or {}).items():
        if key in meta and not _is_instance(meta[key], want):
            raise ValueError(f"field {key!r} is {meta[key]!r}, not of type {want}")
    if not isinstance(meta.get("info", {}), dict):
        raise ValueError(f"field 'info' is {meta['info']!r}, not a JSON object")
    layers = meta.get("layers")
    if "layers" in meta and not (
        isinstance(layers, list)
        and layers
        and all(isinstance(n, str) for n in layers)
        and len(set(layers)) == len(layers)
    ):
        raise ValueError(f"field 'layers' is {layers!r}, not a list of distinct layer names")
    if "shapes" not in meta:
        return
    shapes = meta["shapes"]
    if not isinstance(shapes, dict) or (layers is not None and set(shapes) != set(layers)):
        raise ValueError(f"field 'shapes' {shapes!r} does not give one shape per layer {layers!r}")
    for name, shape in shapes.items():
        if not (isinstance(shape, list) and all(_is_instance(d, int) and d >= 0 for d in shape)):
            raise ValueError(f"the shape of layer {name!r} is {shape!r}, not a list of sizes")


class IntIn:
    """A :func:`check_meta` field type: an integer (not a bool) in ``lo..hi``.

    Example:
        >>> check_meta({"max_lag": 3}, {"max_lag": IntIn(1, 10**6)})
    """

    def __init__(self, lo: int, hi: int):
        self.lo, self.hi = lo, hi

    def __repr__(self) -> str:
        return f"an integer in {self.lo}..{self.hi}"


def _is_instance(value: Any, want) -> bool:
    if isinstance(want, IntIn):
        return _is_instance(value, int) and want.lo <= value <= want.hi
    if isinstance(want, list):  # [t]: a list of t
        return isinstance(value, list) and all(_is_instance(v, want[0]) for v in value)
    wants = want if isinstance(want, tuple) else (want,)
    if isinstance(value, bool) and bool not in wants:
        return False  # JSON true is not a window length
    if float in wants and isinstance(value, int):
        return True  # JSON writes 1.0 as 1 only by hand, but accept it
    return isinstance(value, wants)


class TargetLock:
    """An advisory lock (``fcntl.flock``) on ``.<name>.lock`` beside an output, so that two
    processes never write the same run directory or export at once.

    The second process gets :class:`OutputExistsError` at start, naming the process that holds
    the lock (its pid and command line, written into the lock file). Within one process the lock
    does not apply (a writer abandoned when ``fit`` raised must not block the retry). The OS releases the lock
    when the holder exits, however it exits; :meth:`release` also removes the lock file.

    Args:
        path: the output (a file or a run directory) to protect.
        what: what the holder does, for the message (``"recording into"``, ``"exporting to"``).

    Example:
        >>> with TargetLock("out/model.tflite", "exporting to"):  # doctest: +SKIP
        ...     write_everything()
    """

    def __init__(self, path: str | os.PathLike, what: str):
        self.path, self.what = Path(path), what
        self.lock_path = self.path.parent / f".{self.path.name}.lock"
        self._fd: int | None = None

    def acquire(self) -> TargetLock:
        import fcntl
        import sys
        import time

        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 1024).decode(errors="replace").strip() or "another process"
            os.close(fd)
            if holder.startswith(f"process {os.getpid()} "):
                return self  # an earlier writer of this process, abandoned (e.g. fit raised)
            raise OutputExistsError(
                f"{self.path} is in use: {holder} is {self.what} it now. Fix: wait until that "
                "process has finished (or stop it), or choose another path."
            ) from None
        cmd = " ".join(sys.argv)[:200]
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        os.ftruncate(fd, 0)
        os.write(fd, f"process {os.getpid()} ({cmd}, since {stamp})".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            self.lock_path.unlink(missing_ok=True)  # while still held: no one else uses it now
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> TargetLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self) -> None:
        self.release()
