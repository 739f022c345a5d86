"""Build: C source and cffi cdef -> a loaded extension module, through a persistent cache safe for many processes.

Layout of the cache directory (``SYMCONV_CACHE_DIR``, else ``$XDG_CACHE_HOME/symconv``, else
``~/.cache/symconv``)::

    modules/<name>/   <name>.c (cffi's wrapper, our source inside), <name>.cdef, the extension, manifest.json
    index/<key>       the module name built for a recipe key, so a cache hit skips derive, cse and render
    locks/<name>.lock one fcntl lock per module, held while building it
    tmp/build-*/      private build directories, each locked (owner.lock) by its live build; a finished build is
                      renamed into modules/ in one step, a killed one's folder is swept (``sweep``) by a later build

``<name>`` is a sha256 of the source, cdef, flags, compiler, the environment variables that change a binary
(``compiler.BUILD_ENVIRONMENT``), cffi version, Python ABI and ``CACHE_VERSION``.
Readers take no lock: a module counts only once its manifest (written last, checked before every load)
matches the extension's size and sha256, so a half-written or truncated file is rebuilt, never loaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import platform
import shutil
import stat
import sys
import sysconfig
import tempfile
import time
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Final, Iterator, Optional

try:
    import fcntl
except ImportError:  # Windows: atomic renames alone keep the cache consistent, builds may just repeat
    fcntl = None  # type: ignore[assignment]

import cffi

from symconv.build.compiler import (
    CompilerError,
    build_environment,
    check_compiler,
    compiler_command,
    library_name,
    run_compiler,
)
from symconv.build.safety import UnsafeCacheError, check_root, create_private, existing_dir, private_dir, read_private

__all__ = [
    "CACHE_ENV", "CACHE_VERSION", "DEFAULT_CFLAGS", "ARCH_FLAGS", "LINK_TOO", "OPENMP_FLAGS", "CompilerError",
    "BuildJob",
    "cache_root", "compiler_command", "environment_key", "host_fingerprint", "flags_key", "target_flags", "linked_flags",
    "load_indexed", "build", "locked", "write_atomic", "sweep", "STALE_AFTER", "UnsafeCacheError",
]

CACHE_ENV: Final = "SYMCONV_CACHE_DIR"
CACHE_VERSION: Final = 1
"""Version of the cache layout and build recipe; it enters every module name."""
DEFAULT_CFLAGS: Final = ("-O3",)
ARCH_FLAGS: Final = {"native": ("-march=native",), "portable": ()}
"""Target flags by name: ``native`` uses every instruction of this CPU (AVX2, FMA, AVX-512 where present),
``portable`` the compiler's baseline for the architecture, for a module to be loaded on any machine."""
LINK_TOO: Final = ("-fsanitize=", "-fno-sanitize")
"""Prefixes of compiler flags that must reach the linker too: an instrumented object needs its runtime."""
OPENMP_FLAGS: Final = ("-fopenmp",)
"""Compiled and linked into every kernel module: the kernels split work across threads with OpenMP."""

@dataclass(frozen=True)
class BuildJob:
    """What to compile: the C source, the cffi cdef (the kernels' prototypes) and extra compiler flags.

    ``cdef=None``: the source is a CPython extension module of its own, built without cffi; it names its init
    function after the macro ``SYMCONV_MODULE`` (the module name, known only once the source is hashed) and
    may include headers from ``include_dirs``.

    ``generator`` names what produced the source and the version of its data model (symconv and
    ``render.TEMPLATE_VERSION``), so a new generator never reuses an old build even for equal text.
    """

    source: str
    cdef: Optional[str]
    cflags: tuple[str, ...] = DEFAULT_CFLAGS
    generator: str = ""
    ldflags: tuple[str, ...] = ()
    include_dirs: tuple[str, ...] = ()

    def module_name(self) -> str:
        """``symconv_`` and 40 hex digits of sha256 over everything that changes the built binary.

        >>> BuildJob("int f(void) { return 1; }", "int f(void);").module_name()[:8]
        'symconv_'
        """
        recipe = {"source": self.source, "cdef": self.cdef, **flags_key(self.cflags), "ldflags": list(self.ldflags),
                  "generator": self.generator, **environment_key()}
        if self.include_dirs:  # only when set: the names of the kernel modules stay what they were
            recipe["include_dirs"] = list(self.include_dirs)
        return "symconv_" + hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:40]


def cache_root(override: Optional[os.PathLike[str] | str] = None) -> Path:
    """The cache directory: ``override``, ``$SYMCONV_CACHE_DIR``, ``$XDG_CACHE_HOME/symconv``, ``~/.cache/symconv``.

    >>> cache_root("some/dir").name
    'dir'
    """
    if override is not None:
        return Path(override).absolute()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).absolute()
    xdg = os.environ.get("XDG_CACHE_HOME")
    # The XDG rule: a relative XDG_CACHE_HOME is invalid and must be ignored.
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "symconv"


def environment_key() -> dict[str, object]:
    """Everything outside the source that makes a built module differ: compiler, the environment variables
    that change its command line or its search paths (``compiler.BUILD_ENVIRONMENT``), cffi, Python ABI.

    >>> sorted(environment_key())
    ['abi', 'cache', 'cffi', 'compiler', 'environment', 'python']
    """
    return {
        "compiler": compiler_command(),
        "environment": build_environment(),
        "cffi": cffi.__version__,
        "python": sys.version,
        "abi": sysconfig.get_config_var("EXT_SUFFIX"),
        "cache": CACHE_VERSION,
    }


@cache
def host_fingerprint() -> str:
    """What ``-march=native`` depends on: the CPU's vendor, family, model and feature flags (Linux), else
    what the platform module knows. Code built for one CPU must not be loaded on another.

    >>> len(host_fingerprint())
    16
    """
    fields = {"machine": platform.machine(), "processor": platform.processor()}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                name, _, value = line.partition(":")
                name = name.strip()
                if name in ("vendor_id", "cpu family", "model", "model name", "flags", "Features", "CPU part"):
                    fields.setdefault(name, value.strip())  # the first core's line; all cores agree
    except OSError:
        pass
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def flags_key(flags: tuple[str, ...]) -> dict[str, object]:
    """The flags for a cache key, plus the host CPU's fingerprint when a flag tunes for the host.

    >>> sorted(flags_key(("-O3",))), sorted(flags_key(("-O3", "-march=native")))
    (['cflags'], ['cflags', 'host'])
    """
    key: dict[str, object] = {"cflags": list(flags)}
    if any(flag.endswith("=native") for flag in flags):
        key["host"] = host_fingerprint()
    return key


def target_flags(cflags: tuple[str, ...], arch: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Compile and link flags of a kernel module: ``cflags``, the target's flags, FMA contraction, OpenMP.

    ``-ffp-contract=fast`` is GCC's default outside ISO mode; it is spelled out so that ``-std=c99`` in
    ``cflags`` cannot silently halve the speed of the multiply-adds. Flags that the linker needs as well
    (``LINK_TOO``: the sanitizers) go to both lists.

    >>> target_flags(("-O3",), "portable")
    (('-O3', '-ffp-contract=fast', '-fopenmp'), ('-fopenmp',))
    >>> target_flags(("-O1", "-fsanitize=address"), "portable")[1]
    ('-fsanitize=address', '-fopenmp')
    """
    if arch not in ARCH_FLAGS:
        raise ValueError(f"arch must be one of {sorted(ARCH_FLAGS)}, got {arch!r}")
    return tuple(cflags) + ARCH_FLAGS[arch] + ("-ffp-contract=fast",) + OPENMP_FLAGS, linked_flags(cflags) + OPENMP_FLAGS


def linked_flags(cflags: tuple[str, ...]) -> tuple[str, ...]:
    """The flags of ``cflags`` that the linker needs as well (``LINK_TOO``): an instrumented object's runtime.

    >>> linked_flags(("-O1", "-fsanitize=address,undefined", "-g"))
    ('-fsanitize=address,undefined',)
    """
    return tuple(flag for flag in cflags if flag.startswith(LINK_TOO))


def _digest(path: Path) -> str:
    return hashlib.sha256(read_private(path)).hexdigest()


def _import_extension(name: str, path: Path) -> ModuleType:
    # Loaded from its file, not via sys.path or sys.modules: nothing global changes.
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _load_verified(cache: Path, name: str) -> Optional[ModuleType]:
    """The cached module if its manifest matches the extension on disk, else None (missing or corrupt)."""
    modules = existing_dir(cache, "modules")  # refused (UnsafeCacheError) if others could write it
    if modules is None:
        return None
    directory = modules / name
    try:
        folder = os.lstat(directory)
        # Only a real folder of ours, and only the library name this module must have: never a path elsewhere.
        if not stat.S_ISDIR(folder.st_mode) or folder.st_uid != os.geteuid() or folder.st_mode & 0o022:
            return None
        manifest = json.loads(read_private(directory / "manifest.json", 1 << 20))
        if manifest["library"] != library_name(name):
            return None
        library = directory / manifest["library"]
        data = read_private(library)
        if len(data) != manifest["size"] or hashlib.sha256(data).hexdigest() != manifest["sha256"]:
            return None
        return _import_extension(name, library)
    except (OSError, ValueError, KeyError, TypeError, ImportError):
        return None


def _load_fresh(cache: Path, name: str) -> ModuleType:
    library = cache / "modules" / name / library_name(name)
    try:
        return _import_extension(name, library)
    except ImportError as error:
        raise CompilerError(f"{name} was built but does not load: {error}") from error


def load_indexed(cache: Path, key: str) -> Optional[ModuleType]:
    """The module recorded for recipe ``key`` if it is cached and intact: no lowering, no rendering, no compiler."""
    if not key.isalnum():
        return None
    index = existing_dir(check_root(cache), "index")
    if index is None:
        return None
    try:
        name = read_private(index / key, 4096).decode("ascii").strip()
    except (OSError, UnicodeError):
        return None
    return _load_verified(index.parent, name) if name.isidentifier() else None


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive fcntl lock on ``path`` (created 0600 if missing, never through a link): one process at
    a time in the block. The folder must exist (``safety.private_dir``)."""
    with os.fdopen(create_private(path), "a") as handle:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_UN)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: a reader sees the old file or the new
    one, never half of one. The folder must exist (``safety.private_dir``); the file is 0600."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(temporary)
        raise


def _compile(job: BuildJob, name: str, workdir: Path) -> Path:
    """Compile in ``workdir`` (``compiler.run_compiler``); return the directory holding the finished files."""
    library = run_compiler(name, job.source, job.cdef, job.cflags, job.ldflags, job.include_dirs, workdir)
    staged = workdir / name
    staged.mkdir(0o700)
    os.chmod(staged, 0o700)  # whatever the umask: only we may read, run or change a cached module
    os.replace(library, staged / library.name)
    os.replace(workdir / f"{name}.c", staged / f"{name}.c")
    os.chmod(staged / library.name, 0o700)
    os.chmod(staged / f"{name}.c", 0o600)
    if job.cdef is not None:
        write_atomic(staged / f"{name}.cdef", job.cdef)
    manifest = {"library": library.name, "size": (staged / library.name).stat().st_size,
                "sha256": _digest(staged / library.name)}
    write_atomic(staged / "manifest.json", json.dumps(manifest, indent=1) + "\n")
    return staged


def _install(staged: Path, final: Path, workdir: Path) -> None:
    """Move a finished build into place; a corrupt entry there is moved aside first (we hold the lock)."""
    if os.path.lexists(final):
        os.replace(final, workdir / "stale")
    os.replace(staged, final)


STALE_AFTER: Final = 60.0
"""Seconds after which a build directory that no live process holds counts as abandoned. A build locks its
directory microseconds after creating it; the margin covers that moment and a step of the clock."""
UNLOCKED_STALE_AFTER: Final = 86400.0
"""The same for a directory without an owner lock (made by an older symconv, which may still be running)."""


def sweep(tmp: Path, max_age: float = STALE_AFTER) -> list[Path]:
    """The build directories in ``tmp`` left by killed builds, removed: older than ``max_age`` seconds and not
    locked by a live process (a build holds ``owner.lock`` in its directory; the kernel drops a dead process's
    locks). Returns what it removed.
    """
    now, removed = time.time(), []
    for stale in tmp.glob("build-*"):
        try:
            info = os.lstat(stale)
            if now - info.st_mtime <= max_age:
                continue
            if not stat.S_ISDIR(info.st_mode):  # not ours (a link, a file): removed, never followed
                os.unlink(stale)
                removed.append(stale)
                continue
            try:
                owner = os.open(stale / "owner.lock", os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            except FileNotFoundError:
                if now - info.st_mtime > UNLOCKED_STALE_AFTER:
                    shutil.rmtree(stale)
                    removed.append(stale)
                continue
            try:
                if fcntl is not None:
                    fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError: a live build holds it
                shutil.rmtree(stale)
                removed.append(stale)
            finally:
                os.close(owner)
        except OSError:
            pass  # in use, or another process swept it first
    return removed


def build(job: BuildJob, cache: Path, index_key: Optional[str] = None) -> ModuleType:
    """Load ``job``'s module from the cache, compiling it first if it is missing or corrupt.

    Two processes asking for the same module at once: one compiles under the lock, the other waits and then
    loads the result. ``index_key``, if given, records the module for ``load_indexed``.
    """
    name = job.module_name()
    cache = check_root(cache)  # raises UnsafeCacheError, naming the folder and the fix, if others could write it
    module = _load_verified(cache, name)
    if module is None:
        check_compiler()
        with locked(private_dir(cache, "locks") / f"{name}.lock"):
            module = _load_verified(cache, name)  # another process may have finished while we waited
            if module is None:
                tmp = private_dir(cache, "tmp")
                sweep(tmp)
                workdir = Path(tempfile.mkdtemp(prefix="build-", dir=tmp))
                try:
                    with locked(workdir / "owner.lock"):  # ours while we live: sweep() leaves it alone
                        _install(_compile(job, name, workdir), private_dir(cache, "modules") / name, workdir)
                finally:
                    shutil.rmtree(workdir, ignore_errors=True)
                module = _load_fresh(cache, name)
    if index_key is not None:
        write_atomic(private_dir(cache, "index") / index_key, name + "\n")
    return module
