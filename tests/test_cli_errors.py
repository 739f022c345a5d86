"""The command line as a hostile user drives it: every error one line and exit status 2, never a traceback.

Random argument lists from the real flags (hypothesis), every number-taking flag with huge, zero, negative and
non-ASCII values, output paths that are files, directories, unwritable or full, a closed stdout, an unusable
cache or home, and Ctrl-C at random moments of a real process, start-up included.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symconv import console
from symconv.cli import build_parser, main, parse_pair
from symconv.train import TrainResult
from symconv.tuning.benchmark import thread_counts

ROOT = Path(__file__).resolve().parent.parent


def _commands() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


COMMANDS = _commands()
NUMBER_TYPES = {console.integer, console.positive, console.natural, console.finite_float, console.positive_float,
                parse_pair, thread_counts}
COUNT_TYPES = {console.positive, thread_counts}


def _flags(command: str) -> list[argparse.Action]:
    return [a for a in COMMANDS[command]._actions if a.option_strings and a.dest != "help"]


def _type(parser: argparse.ArgumentParser, action: argparse.Action) -> object:
    return parser._registry_get("type", action.type, action.type)


NUMBER_FLAGS = sorted({(name, a.option_strings[-1]) for name, p in COMMANDS.items() for a in _flags(name)
                       if _type(p, a) in NUMBER_TYPES and a.choices is None})
INTEGER_FLAGS = [(name, flag) for name, flag in NUMBER_FLAGS
                 if _type(COMMANDS[name], next(a for a in _flags(name) if flag in a.option_strings))
                 not in (console.finite_float, console.positive_float)]
COUNT_FLAGS = sorted({(name, a.option_strings[-1]) for name, p in COMMANDS.items() for a in _flags(name)
                      if _type(p, a) in COUNT_TYPES})


@pytest.fixture(autouse=True)
def in_a_scratch_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands that succeed write where they are told (out.png, out/, generate's '.'): never into the checkout."""
    monkeypatch.chdir(tmp_path)


def _one_error_line(err: str, *needles: str) -> None:
    assert "Traceback" not in err, err
    assert err.count("\n") == 1 and err.startswith("symconv: error: "), err
    for needle in needles:
        assert needle in err, err


def test_every_number_flag_is_parsed_by_a_checking_type() -> None:
    # A plain int() would take "３" and 10**40; the parser's registry maps type=int and float to the checks.
    plain = [(name, a.option_strings[-1]) for name, p in COMMANDS.items() for a in _flags(name)
             if _type(p, a) in (int, float)]
    assert not plain and len(NUMBER_FLAGS) >= 20 and len(COUNT_FLAGS) >= 10


@pytest.mark.parametrize("command, flag", INTEGER_FLAGS)
@pytest.mark.parametrize("value", ["9" * 40, str(2**63), "-" + "9" * 25, "1.5"])
def test_huge_integers_are_one_line(command: str, flag: str, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    extra = ["-o", "out.png"] if command == "figure" else ["-o", "out"] if command == "export" else []
    assert main([command, flag, value, *extra]) == 2
    _one_error_line(capsys.readouterr().err, f"argument {flag}")


@pytest.mark.parametrize("command, flag", NUMBER_FLAGS)
@pytest.mark.parametrize("value", ["３", "٣", "²", "1_0", "0xA", "", "1e"])
def test_foreign_digits_and_garbage_are_one_line(command: str, flag: str, value: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    extra = ["-o", "out.png"] if command == "figure" else ["-o", "out"] if command == "export" else []
    assert main([command, flag, value, *extra]) == 2
    _one_error_line(capsys.readouterr().err, f"argument {flag}")


@pytest.mark.parametrize("command, flag", COUNT_FLAGS)
@pytest.mark.parametrize("value", ["0", "-1", "-9223372036854775807"])
def test_zero_and_negative_counts_are_refused(command: str, flag: str, value: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    extra = ["-o", "out.png"] if command == "figure" else ["-o", "out"] if command == "export" else []
    assert main([command, flag, value, *extra]) == 2
    _one_error_line(capsys.readouterr().err, f"argument {flag}")


def test_non_finite_floats_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["train", "--lr", "nan"], ["train", "--lr", "inf"], ["export", "-o", "x", "--lr", "-inf"],
                 ["prove", "--all-sizes", "--timeout", "nan"], ["train", "--lr", "1e400"],
                 ["train", "--lr", "1e40"]):  # finite, but not in float32
        assert main(argv) == 2
        _one_error_line(capsys.readouterr().err, argv[-2].lstrip("-"))


def test_output_paths_that_cannot_be_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("")
    cases = [
        (["generate", "-o", str(a_file)], str(a_file)),                 # a directory is wanted, a file is there
        (["generate", "-o", str(a_file / "sub")], "sub"),               # under a file
        (["latex", "-o", str(tmp_path)], "directory"),                  # a file is wanted, a directory is there
        (["latex", "-o", "/dev/full"], "No space left"),
        (["latex", "-o", str(tmp_path / "missing" / "x.tex")], "x.tex"),
        (["figure", "-o", "/dev/full"], "path must end in"),
        (["figure", "-o", str(tmp_path / "missing" / "x.png")], "x.png"),
        (["figure", "-o", str(tmp_path)], "path must end in"),
        (["export", "-o", str(a_file)], str(a_file)),
        (["prove", "--all-sizes", "--axes", "1", "--certificate", str(a_file)], str(a_file)),
        (["import", str(tmp_path)], "not a regular file"),
        (["import", "/dev/zero"], "not a regular file"),                # onnx.load would read it for ever
    ]
    if os.access("/proc/version", os.F_OK):
        cases.append((["latex", "-o", "/proc/version"], "/proc/version"))  # unwritable even for root
    for argv, needle in cases:
        if argv[0] == "import":
            pytest.importorskip("onnx")
        assert main(argv) == 2, argv
        _one_error_line(capsys.readouterr().err, needle)


def test_api_errors_inside_a_command_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    for argv, needle in [
        (["generate", "--input", "64", "--kernel", "3", "--strategy", "unrolled"], "UNROLL_MAX"),
        (["generate", "--input", "6", "--kernel", "3", "--stride", str(2**40), "--strategy", "direct"], "stride"),
        (["figure", "--input", str(2**62), "--kernel", "3", "-o", "x.png"], "figures draw maps up to"),
        (["derive", "--input", str(2**62), "--kernel", str(2**61), "--max-terms", str(2**62)], "terms"),
        (["bench", "--threads", "2,0"], "--threads"),
    ]:
        assert main(argv) == 2, argv
        _one_error_line(capsys.readouterr().err, needle)


# --- random argument lists -------------------------------------------------------------------------------------

SMALL = st.sampled_from(["1", "2", "3", "4"])
NUMBERS = st.one_of(SMALL, st.sampled_from(["0", "-1", "-3", str(2**31), str(2**62), str(2**63), "9" * 30,
                                            "1e3", "2.5", "nan", "inf", "-inf", "", " ", "x", "３", "²", "0x4"]))
PAIRS = st.one_of(st.builds(lambda a, b: f"{a}x{b}", SMALL, SMALL), st.sampled_from(["3x3x3", "x", "2x", "-1x2"]))


def _values(tmp: Path) -> st.SearchStrategy[str]:
    paths = st.sampled_from([str(tmp / "a_file"), str(tmp), "/dev/full", str(tmp / "a_file" / "under"),
                             "out.png", "out.svg", "out.gif", "out.tex", "out_dir", str(tmp / "none" / "x.tex")])
    return st.one_of(NUMBERS, PAIRS, paths, st.text(max_size=4))


@st.composite
def argument_lists(draw: st.DrawFn, tmp: Path) -> list[str]:
    """A command and up to 5 of its real flags with values of every kind, sometimes a stray token."""
    name = draw(st.sampled_from(sorted(COMMANDS)))
    parser = COMMANDS[name]
    argv = [name]
    values = _values(tmp)
    flags = _flags(name)
    for action in draw(st.lists(st.sampled_from(flags), max_size=5, unique_by=id)) if flags else []:
        if action.dest == "all_sizes":
            continue  # runs the solvers for seconds; its flags are parsed (and tested) all the same
        argv.append(action.option_strings[-1])
        if action.nargs == 0:
            continue
        kind = _type(parser, action)
        if action.choices is not None and draw(st.booleans()):
            argv.append(str(draw(st.sampled_from(list(action.choices)))))
        elif kind is parse_pair:
            argv.append(draw(st.one_of(PAIRS, SMALL, NUMBERS)))
        elif kind in NUMBER_TYPES:
            argv.append(draw(NUMBERS))
        else:
            argv.append(draw(values))
    positional = [a for a in parser._actions if not a.option_strings]
    argv += [draw(values) for _ in positional if draw(st.integers(0, 4))]  # sometimes left out
    if name == "figure" and "-o" not in argv and draw(st.integers(0, 3)):
        argv += ["-o", draw(st.one_of(st.sampled_from(["out.png", "out.svg", "out.pdf", "out.gif"]), values))]
    if draw(st.integers(0, 9)) == 0:
        argv.insert(draw(st.integers(0, len(argv))), draw(st.sampled_from(["--bogus", "-x", "--", "--help"])))
    return argv


@pytest.fixture
def quick_engines(monkeypatch: pytest.MonkeyPatch) -> None:
    """The engines behind bench, demo and train (seconds to minutes, tested on their own) answer at once: the
    property is about the arguments and the errors, which are all handled before or around them."""
    import symconv.demo
    import symconv.proofs.general.bench
    import symconv.train
    import symconv.tuning.benchmark

    monkeypatch.setattr(symconv.demo, "numeric_comparison", lambda d, max_rows=12: ("table", True))
    monkeypatch.setattr(symconv.tuning.benchmark, "run_kernel_benchmark", lambda args: "table")
    monkeypatch.setattr(symconv.tuning.benchmark, "symbolic_table", lambda quick=False: "table")
    monkeypatch.setattr(symconv.proofs.general.bench, "general_table", lambda: ("table", True))
    monkeypatch.setattr(symconv.train, "train", lambda config, progress=None, **kw: TrainResult((1.0,), 1.0, 1.0, 0.0))


TRIED: list[tuple[str, int]] = []


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=st.data())
def test_random_argument_lists_never_show_a_traceback(data: st.DataObject, tmp_path: Path, quick_engines: None,
                                                      capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a_file").write_text("")
    argv = data.draw(argument_lists(tmp_path))
    status = main(argv)
    out, err = capsys.readouterr()
    TRIED.append((argv[0], status))
    assert status in (0, 1, 2), (argv, status, err)
    assert "Traceback" not in err and "internal error" not in err, (argv, err)
    if status == 2:
        _one_error_line(err)
    else:
        assert err.count("\n") <= 1, (argv, err)  # at most a library's one-line warning
    assert status != 1 or argv[0] in ("prove", "demo", "bench"), (argv, out)


# --- real processes --------------------------------------------------------------------------------------------

def _env(**changes: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.update(changes)
    return env


def _symconv(*args: str) -> list[str]:
    return [sys.executable, "-m", "symconv", *args]


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_argument_lists_in_a_real_process(data: st.DataObject, tmp_path: Path) -> None:
    # The same property through the console's real start-up, streams and exit (the commands that run no
    # engine for long: derive, prove, generate and latex on small shapes).
    (tmp_path / "a_file").write_text("")
    argv = data.draw(argument_lists(tmp_path).filter(lambda a: a[0] in ("derive", "prove", "generate", "latex")))
    result = subprocess.run(_symconv(*argv), capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=300)
    assert result.returncode in (0, 2), (argv, result)
    assert "Traceback" not in result.stderr and result.stderr.count("\n") <= 1, (argv, result.stderr)
    if result.returncode == 2:
        _one_error_line(result.stderr)


def test_a_closed_stdout_ends_quietly() -> None:
    # `symconv derive ... | head -1`: the reader goes away after one line.
    process = subprocess.Popen(_symconv("derive", "--input", "24", "--kernel", "3"), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=_env())
    assert process.stdout is not None and process.stderr is not None
    process.stdout.readline()
    process.stdout.close()
    err = process.stderr.read().decode()
    assert process.wait(timeout=120) == 2 and err == ""


def test_a_full_stdout_is_one_line(tmp_path: Path) -> None:
    with open("/dev/full", "w") as full:
        result = subprocess.run(_symconv("derive"), stdout=full, stderr=subprocess.PIPE, text=True, env=_env())
    assert result.returncode == 2
    _one_error_line(result.stderr, "standard output", "No space left")


@pytest.mark.parametrize("where", ["cache under a file", "home unwritable"])
def test_an_unusable_cache_or_home_is_one_line(where: str, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    env = _env(SYMCONV_CACHE_DIR=str(blocker / "cache")) if where.startswith("cache") else _env(HOME="/proc/self")
    if not where.startswith("cache"):
        env.pop("SYMCONV_CACHE_DIR", None)
        env.pop("XDG_CACHE_HOME", None)
    result = subprocess.run(_symconv("demo"), capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 2, result
    err = result.stderr.splitlines()
    assert "Traceback" not in result.stderr and err[-1].startswith("symconv: error: ")
    assert len(err) <= 2  # with no writable home, matplotlib may warn once (one line) that it uses a temp folder


def test_ctrl_c_at_any_moment_is_one_line_and_130() -> None:
    # A real Ctrl-C (SIGINT) at random moments of a real run: while Python starts, while symconv's modules load
    # (about a second: SymPy, NumPy), while it derives and proves.
    rng = random.Random(13)
    outcomes: dict[str, int] = {}
    for delay in sorted(rng.uniform(0.0, 2.0) for _ in range(10)):
        process = subprocess.Popen(_symconv("prove", "--input", "14", "--kernel", "3"), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, env=_env())
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
        if process.returncode == -signal.SIGINT:  # before Python installed its handler: it died quietly
            assert err == "", err
            outcomes["killed before Python started"] = outcomes.get("killed before Python started", 0) + 1
        elif "Traceback" in err:  # only in Python's own start-up, before the first line of symconv
            assert "symconv" not in err and process.returncode != 0, err
            outcomes["in Python's start-up"] = outcomes.get("in Python's start-up", 0) + 1
        elif process.returncode == 0:
            assert err == "" and "[ok]" in out
            outcomes["finished first"] = outcomes.get("finished first", 0) + 1
        else:
            assert process.returncode == 130 and err == "symconv: interrupted\n", (delay, err)
            outcomes["interrupted, one line"] = outcomes.get("interrupted, one line", 0) + 1
    assert outcomes.get("interrupted, one line", 0) >= 5, outcomes
