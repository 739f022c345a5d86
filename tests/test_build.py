"""The build cache: keys, persistence across processes, concurrent builds, corrupt files, compiler errors."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import cffi
import numpy as np
import pytest

from conftest import STRICT_CFLAGS
from symconv import ConvSpec, compile_conv
from symconv.build.cache import CACHE_ENV, BuildJob, CompilerError, build, cache_root, environment_key
from symconv.symbolic.reference import conv2d_forward

REPO = Path(__file__).resolve().parent.parent
SPEC = ConvSpec((4, 4), (2, 2), stride=2)  # small: cheap to compile from scratch in a fresh cache

# Run in a new interpreter: compile (or load) SPEC and print a JSON report.
SCRIPT = textwrap.dedent(
    f"""
    import json, sys, time
    import numpy as np
    import symconv.runtime.checked_call as checked_call
    import symconv.pipeline as codegen
    from symconv import ConvSpec, compile_conv
    if sys.argv[1] == "cached-only":
        def refuse(*args, **kwargs):
            raise AssertionError("a cache hit must not lower, render or build")
        codegen.lower = codegen.render = codegen.build = refuse
        checked_call.keyed = checked_call.build = refuse
    spec = ConvSpec((4, 4), (2, 2), stride=2)
    start = time.perf_counter()
    k = compile_conv(spec, "float64", cflags={list(STRICT_CFLAGS)!r})
    seconds = time.perf_counter() - start
    y = k.forward(np.arange(16.0).reshape(1, 1, 4, 4), np.ones((1, 1, 2, 2)))
    print(json.dumps({{"seconds": seconds, "y": y.ravel().tolist(), "library": k.library,
                      "call": type(k.forward).__name__}}))
    """
)


def run_python(cache: Path, mode: str = "any") -> subprocess.Popen:
    env = {**os.environ, CACHE_ENV: str(cache), "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", SCRIPT, mode], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def report(process: subprocess.Popen) -> dict:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    return json.loads(out)


def kernel_modules(cache: Path) -> list[Path]:
    """The cffi kernel modules in ``cache`` (each keeps its .cdef), not the checked-call extension beside them."""
    return sorted(p for p in (cache / "modules").iterdir() if list(p.glob("*.cdef")))


EXPECTED_Y = conv2d_forward(SPEC, np.arange(16.0).reshape(1, 1, 4, 4), np.ones((1, 1, 2, 2))).ravel().tolist()


def test_module_name_hashes_source_flags_and_environment():
    job = BuildJob("int f(void) { return 1; }", "int f(void);", ("-O2",))
    name = job.module_name()
    assert name.isidentifier() and name.startswith("symconv_") and len(name) == len("symconv_") + 40
    assert name == BuildJob(job.source, job.cdef, ("-O2",)).module_name()
    assert name != BuildJob(job.source + "\n", job.cdef, ("-O2",)).module_name()
    assert name != BuildJob(job.source, job.cdef, ("-O3",)).module_name()
    key = environment_key()
    assert key["cffi"] == cffi.__version__ and key["python"] == sys.version and key["abi"]


def test_cache_root_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "env"))
    assert cache_root(tmp_path / "arg") == tmp_path / "arg"
    assert cache_root() == tmp_path / "env"
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "symconv"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/is/ignored")
    assert cache_root() == Path.home() / ".cache" / "symconv"


def test_second_process_loads_from_cache_without_compiling(tmp_path):
    first = report(run_python(tmp_path))
    modules = sorted((tmp_path / "modules").iterdir())
    assert len(kernel_modules(tmp_path)) == 1 and len(modules) == 2 and first["y"] == EXPECTED_Y
    kept = {p.suffix for p in kernel_modules(tmp_path)[0].iterdir()}
    assert {".c", ".cdef", ".so", ".json"} <= kept  # the .c stays next to the extension for reading
    second = report(run_python(tmp_path, "cached-only"))
    assert second["y"] == EXPECTED_Y and second["library"] == first["library"]
    assert first["call"] == second["call"] == "CheckedCall"  # the C fast path, built once, then loaded
    assert second["seconds"] < 0.5, second  # milliseconds in practice: a file read, a checksum, a dlopen
    assert sorted((tmp_path / "modules").iterdir()) == modules
    assert not list((tmp_path / "tmp").iterdir())  # private build directories are cleaned up


def test_concurrent_processes_building_the_same_kernel_both_succeed(tmp_path):
    processes = [run_python(tmp_path) for _ in range(3)]
    results = [report(p) for p in processes]
    assert all(r["y"] == EXPECTED_Y for r in results)
    assert len({r["library"] for r in results}) == 1
    assert len(kernel_modules(tmp_path)) == 1


def corrupt_and_rebuild(tmp_path: Path, damage) -> None:
    # Damage the cache between two processes (a library loaded in a live process is never rewritten in place:
    # builds replace whole directories by rename, so the old file stays valid for whoever mapped it).
    first = report(run_python(tmp_path))
    directory = Path(first["library"]).parent
    library = Path(first["library"])
    size = library.stat().st_size
    damage(library, directory / "manifest.json")
    second = report(run_python(tmp_path))
    assert second["y"] == EXPECTED_Y and second["library"] == first["library"]
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["size"] == library.stat().st_size == size


def test_truncated_library_is_detected_by_the_manifest_and_rebuilt(tmp_path):
    def truncate(library: Path, manifest: Path) -> None:
        library.write_bytes(library.read_bytes()[:1000])

    corrupt_and_rebuild(tmp_path, truncate)


def test_garbage_library_that_fails_to_load_is_rebuilt(tmp_path):
    def garbage_with_matching_manifest(library: Path, manifest: Path) -> None:
        junk = b"not an ELF file"
        library.write_bytes(junk)
        manifest.write_text(json.dumps({"library": library.name, "size": len(junk),
                                        "sha256": hashlib.sha256(junk).hexdigest()}))

    corrupt_and_rebuild(tmp_path, garbage_with_matching_manifest)


def test_corrupt_index_entry_falls_back_to_a_build(tmp_path):
    first = report(run_python(tmp_path))
    for entry in (tmp_path / "index").iterdir():
        entry.write_text("not a module name\n")
    assert report(run_python(tmp_path))["library"] == first["library"]


def test_missing_compiler_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("CC", "/nonexistent/cc")
    with pytest.raises(CompilerError, match=r"C compiler '/nonexistent/cc' \(from the CC environment variable\) "
                                            r"was not found") as caught:
        compile_conv(SPEC, "float32", cache_dir=tmp_path)
    assert isinstance(caught.value, RuntimeError) and "Traceback" not in str(caught.value)
    assert not (tmp_path / "modules").exists()


def test_compiler_diagnostics_are_reported(tmp_path):
    job = BuildJob("int broken(void) { return }", "int broken(void);")
    with pytest.raises(CompilerError) as caught:
        build(job, tmp_path)
    message = str(caught.value)
    assert "error" in message and "broken" in message and "Traceback" not in message
    assert not (tmp_path / "modules").exists()


def test_building_leaves_the_process_alone(tmp_path):
    cwd, path, modules = os.getcwd(), list(sys.path), set(sys.modules)
    module = build(BuildJob("int one(void) { return 1; }", "int one(void);"), tmp_path)
    assert module.lib.one() == 1
    assert os.getcwd() == cwd and sys.path == path
    # CPython's loader records single-phase extension modules under their (unique, hashed) name, and cffi
    # its ``<name>.lib``; nothing else changes.
    assert {m for m in set(sys.modules) - modules if "symconv" in m} <= {module.__name__, module.__name__ + ".lib"}


def test_same_arguments_return_the_same_kernels_object(kernels):
    assert kernels(SPEC) is kernels(SPEC)
    assert kernels(SPEC, "float32") is not kernels(SPEC)


def test_native_flags_key_on_the_host_cpu():
    from symconv.build.cache import flags_key, host_fingerprint, target_flags

    cflags, ldflags = target_flags(("-O3",), "native")
    assert "-march=native" in cflags and "-fopenmp" in cflags and ldflags == ("-fopenmp",)
    assert flags_key(cflags)["host"] == host_fingerprint()
    assert "host" not in flags_key(target_flags(("-O3",), "portable")[0])
    native = BuildJob("int f(void) { return 1; }", "int f(void);", cflags)
    portable = BuildJob(native.source, native.cdef, target_flags(("-O3",), "portable")[0])
    assert native.module_name() != portable.module_name()
    with pytest.raises(ValueError, match="arch must be one of"):
        target_flags(("-O3",), "znver9")


def test_a_cpython_extension_job_builds_without_cffi(tmp_path):
    source = textwrap.dedent(
        """
        #include <Python.h>
        #define NAME_(name) #name
        #define NAME(name) NAME_(name)
        #define INIT_(name) PyInit_##name
        #define INIT(name) INIT_(name)
        static struct PyModuleDef definition = {PyModuleDef_HEAD_INIT, NAME(SYMCONV_MODULE), NULL, -1, NULL};
        PyMODINIT_FUNC INIT(SYMCONV_MODULE)(void) { return PyModule_Create(&definition); }
        """
    )
    job = BuildJob(source, None)
    module = build(job, tmp_path)
    assert module.__name__ == job.module_name() and not hasattr(module, "ffi")
    assert not list((tmp_path / "modules" / job.module_name()).glob("*.cdef"))


def test_checked_calls_fall_back_to_python_with_a_warning_when_they_cannot_be_built(monkeypatch, tmp_path):
    from symconv.runtime.checked_call import checked_call_module

    monkeypatch.setenv("CC", "/nonexistent/cc")
    with pytest.warns(RuntimeWarning, match="checked kernel calls run in Python, a few µs slower per call"):
        assert checked_call_module(tmp_path) is None
