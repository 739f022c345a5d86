"""Build hygiene: a compiler run ends with the process that started it, abandoned build folders are swept, and the
environment variables that change a binary enter the cache key."""

from __future__ import annotations

import importlib
import inspect
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from symconv.build.cache import BuildJob, build, locked, sweep
from symconv.build.compiler import BUILD_ENVIRONMENT
from symconv.build.safety import private_dir

REPO = Path(__file__).resolve().parent.parent
posix_only = pytest.mark.skipif(os.name != "posix", reason="process groups and fcntl locks are POSIX")

# A compiler that never finishes: it records its pid and sleeps, as a huge unrolled kernel would keep cc1 busy.
HANGING_COMPILER = """#!/bin/sh
echo $$ > "$SYMCONV_TEST_PIDFILE"
exec sleep 300
"""

BUILDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from symconv.build.cache import BuildJob, build
    build(BuildJob("int f(void) { return 1; }", "int f(void);"), Path(sys.argv[1]))
    """
)


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its parent to reap it does not)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def wait_for(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@posix_only
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_a_compiler_run_does_not_outlive_its_killed_parent(tmp_path: Path, how: signal.Signals) -> None:
    compiler = tmp_path / "hanging-cc"
    compiler.write_text(HANGING_COMPILER)
    compiler.chmod(0o755)
    pidfile = tmp_path / "compiler.pid"
    env = {**os.environ, "CC": str(compiler), "SYMCONV_TEST_PIDFILE": str(pidfile), "PYTHONPATH": str(REPO)}
    cache = tmp_path / "cache"
    parent = subprocess.Popen([sys.executable, "-c", BUILDER, str(cache)], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    try:
        assert wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), 120), "the compiler never started"
        pid = int(pidfile.read_text())
        assert alive(pid)
        parent.send_signal(how)
        parent.wait(timeout=30)
        assert wait_for(lambda: not alive(pid), 10), f"the compiler (pid {pid}) outlived its parent killed by {how.name}"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if pidfile.exists() and pidfile.read_text().strip() and alive(int(pidfile.read_text())):
            os.kill(int(pidfile.read_text()), signal.SIGKILL)
        assert parent.stderr is not None
        parent.stderr.close()
    left = list((cache / "tmp").glob("build-*"))
    if how == signal.SIGINT:  # KeyboardInterrupt: the build ends its compiler and removes its own folder
        assert left == []
        return
    # A build killed outright leaves its private folder behind; once it is old enough, the next sweep removes it.
    assert len(left) == 1
    old = time.time() - 120
    os.utime(left[0], (old, old))
    assert sweep(cache / "tmp") == left and not left[0].exists()


def _aged(path: Path, seconds: float) -> Path:
    stamp = time.time() - seconds
    os.utime(path, (stamp, stamp), follow_symlinks=False)
    return path


@posix_only
def test_sweep_removes_only_abandoned_build_folders(tmp_path: Path) -> None:
    tmp = private_dir(tmp_path, "tmp")
    folders = {name: tmp / f"build-{name}" for name in ("live", "killed", "young", "legacy-old", "legacy-recent")}
    for folder in folders.values():
        folder.mkdir(0o700)
        (folder / "partial.o").write_bytes(b"\0" * 16)
    for name in ("live", "killed", "young"):
        (folders[name] / "owner.lock").touch(0o600)
    holder = "import fcntl, sys, time\nf = open(sys.argv[1], 'a')\nfcntl.flock(f, fcntl.LOCK_EX)\nprint(flush=True)\ntime.sleep(120)"
    processes = {name: subprocess.Popen([sys.executable, "-c", holder, str(folders[name] / "owner.lock")],
                                        stdout=subprocess.PIPE) for name in ("live", "killed")}
    outside = tmp_path / "outside"
    outside.mkdir()
    link = tmp / "build-link"
    link.symlink_to(outside)
    try:
        for process in processes.values():
            assert process.stdout is not None and process.stdout.readline() == b"\n"  # the lock is held
        processes["killed"].kill()
        processes["killed"].wait()
        for name, age in (("live", 3600), ("killed", 3600), ("young", 1), ("legacy-old", 2 * 86400),
                          ("legacy-recent", 3600)):
            _aged(folders[name], age)
        _aged(link, 3600)
        removed = sweep(tmp)
    finally:
        for process in processes.values():
            process.kill()
            process.wait()
            assert process.stdout is not None
            process.stdout.close()
    assert sorted(removed) == sorted([folders["killed"], folders["legacy-old"], link])
    assert all(folders[name].is_dir() for name in ("live", "young", "legacy-recent"))
    assert outside.is_dir() and not link.exists() and not link.is_symlink()  # the link went, not its target


@posix_only
def test_a_folder_locked_in_this_process_is_in_use(tmp_path: Path) -> None:
    tmp = private_dir(tmp_path, "tmp")
    folder = tmp / "build-mine"
    folder.mkdir(0o700)
    with locked(folder / "owner.lock"):
        _aged(folder, 3600)
        assert sweep(tmp) == [] and folder.is_dir()
    assert sweep(tmp) == [folder]


def test_a_build_sweeps_what_a_killed_build_left(tmp_path: Path) -> None:
    tmp = private_dir(tmp_path, "tmp")
    stale = tmp / "build-killed"
    stale.mkdir(0o700)
    (stale / "owner.lock").touch(0o600)
    _aged(stale, 3600)
    module = build(BuildJob("int hygiene(void) { return 7; }", "int hygiene(void);"), tmp_path)
    assert module.lib.hygiene() == 7
    assert not stale.exists() and list(tmp.iterdir()) == []


@pytest.mark.parametrize("name", BUILD_ENVIRONMENT)
def test_every_variable_that_changes_a_binary_enters_the_module_name(monkeypatch: pytest.MonkeyPatch,
                                                                   name: str) -> None:
    job = BuildJob("int f(void) { return 1; }", "int f(void);")
    monkeypatch.delenv(name, raising=False)
    plain = job.module_name()
    monkeypatch.setenv(name, "gcc" if name in ("CC", "CPP", "LDSHARED") else "-DSYMCONV_ENV_TEST=1")
    assert job.module_name() != plain
    monkeypatch.delenv(name)
    assert job.module_name() == plain


def test_cflags_from_the_environment_reach_the_binary_and_key_it(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    # Without CFLAGS in the key the second build would load the first one's module and return 1.
    job = BuildJob("int env_value(void) { return SYMCONV_ENV_VALUE; }", "int env_value(void);")
    values = []
    for value in (1, 2):
        monkeypatch.setenv("CFLAGS", f"-DSYMCONV_ENV_VALUE={value}")
        values.append(build(job, tmp_path).lib.env_value())
    assert values == [1, 2]


@posix_only
def test_another_compiler_earlier_on_path_is_another_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    job = BuildJob("int f(void) { return 1; }", "int f(void);")
    monkeypatch.setenv("CC", "cc")
    plain = job.module_name()
    shadow = tmp_path / "cc"
    shadow.write_text('#!/bin/sh\nexec gcc "$@"\n')
    shadow.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert job.module_name() != plain


def test_the_key_covers_every_variable_setuptools_reads_for_a_compiler() -> None:
    # If setuptools starts reading another variable when it forms the command lines, this test names it.
    try:
        unix = importlib.import_module("setuptools._distutils.compilers.C.unix")
    except ImportError:
        unix = importlib.import_module("setuptools._distutils.sysconfig")  # setuptools before 80
    source = inspect.getsource(unix)
    read = set(re.findall(r"os\.environ(?:\.get\()?\[?\s*'(\w+)'", source))
    read |= set(re.findall(r"'(\w+)' (?:not )?in os\.environ", source))
    read |= {prefix + "FLAGS" for prefix in re.findall(r"_add_flags\(\w+, '(\w+)'\)", source)}
    assert {"CC", "CFLAGS", "LDFLAGS", "CPPFLAGS"} <= read, "the pattern no longer finds the variables"
    assert read <= set(BUILD_ENVIRONMENT), sorted(read - set(BUILD_ENVIRONMENT))
