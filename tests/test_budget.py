"""The term budget: exact estimates, refusals before anything is allocated, the limit raised, Ctrl-C of the CLI."""

import os
import select
import signal
import subprocess
import sys
import time
import tracemalloc

import pytest
import sympy as sp

from symconv import ConvSpec, derive, latex
from symconv.cli import main
from symconv.proofs.conv import prove
from symconv.symbolic.budget import DEFAULT_MAX_TERMS, TermLimitError, estimate
from symconv.symbolic.sparse import Poly, SymbolTable
from symconv.symbolic.symbols import entries

SPECS = [
    ConvSpec((3, 3), (2, 2)),
    ConvSpec((6, 6), (3, 3), stride=2),
    ConvSpec((7, 6), (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2), flip=True, in_channels=2, out_channels=3),
    ConvSpec((5, 5), (3, 3), padding=2, dilation=2, batch=2),
    ConvSpec((9, 8), (4, 3), stride=3, padding=(2, 1)),
]
HUGE = ConvSpec((4096, 4096), (7, 7), in_channels=64, out_channels=64)


def _terms(expr: sp.Expr) -> int:
    return 0 if expr == 0 else len(sp.Add.make_args(expr))


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.describe())
def test_the_estimate_counts_every_term_derive_creates(spec):
    d = derive(spec)
    counted = sum(_terms(e) for t in (d.output, d.grad_input, d.grad_weight, d.grad_bias) for e in entries(t))
    assert estimate(spec).terms == counted


@pytest.mark.parametrize("call", [
    lambda: derive(HUGE),
    lambda: prove(HUGE),
    lambda: derive(HUGE, max_terms=10**9),
])
def test_a_request_over_the_limit_is_refused_before_it_allocates(call):
    tracemalloc.start()
    start = time.perf_counter()
    with pytest.raises(TermLimitError) as error:
        call()
    elapsed = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    message = str(error.value)
    assert "\n" not in message and f"{estimate(HUGE).terms:,}" in message and "--max-terms" in message
    assert "max_terms=" in message and "prove --all-sizes" in message
    # 4096x4096 with 64 channels in and out would be ~10^11 terms: refused in milliseconds, in a few kB.
    assert elapsed < 0.5 and peak < 200_000


def test_raising_the_limit_lets_a_request_through_unchanged():
    spec = SPECS[2]
    needed = estimate(spec).terms
    with pytest.raises(TermLimitError, match=f"limit of {needed - 1:,}"):
        derive(spec, max_terms=needed - 1)
    with pytest.raises(TermLimitError):
        prove(spec, max_terms=needed - 1)
    d = derive(spec, max_terms=needed)
    assert entries(d.grad_input) == entries(derive(spec).grad_input)
    assert prove(d, max_terms=needed).holds


def test_latex_names_its_own_keyword_for_the_budget():
    d = derive(SPECS[1])
    with pytest.raises(TermLimitError, match="term_limit="):
        latex(d, term_limit=10)
    assert latex(d, term_limit=estimate(SPECS[1]).terms).startswith("\\begin{gathered}")


def test_the_default_limit_admits_the_benchmark_layers():
    assert estimate(ConvSpec((32, 32), (3, 3), in_channels=4, out_channels=4)).terms <= DEFAULT_MAX_TERMS
    assert estimate(HUGE).terms > DEFAULT_MAX_TERMS


def test_the_cli_refuses_in_one_line_and_accepts_a_raised_limit(capsys):
    argv = ["prove", "--input", "6x6", "--kernel", "3x3", "--stride", "2"]
    assert main(argv + ["--max-terms", "20"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "over the limit of 20" in err and "Traceback" not in err
    assert main(argv + ["--max-terms", str(estimate(ConvSpec((6, 6), (3, 3), stride=2)).terms)]) == 0
    assert capsys.readouterr().out.count("[ok]") == 8


@pytest.mark.parametrize("spec", SPECS[:3], ids=lambda s: s.describe())
def test_symbol_table_builds_the_trees_sympy_builds(spec):
    d = derive(spec)
    table = SymbolTable(d.symbols)
    for fast, slow in [
        (table.sum_of_products([(d.weight[0, 0, 0, 0], d.input[0, 0, 1, 1]), (d.grad_output[0, 0, 0, 0], d.bias[0])]),
         d.weight[0, 0, 0, 0] * d.input[0, 0, 1, 1] + d.grad_output[0, 0, 0, 0] * d.bias[0]),
        (table.sum_of_products([(d.input[0, 0, 0, 1], d.weight[0, 0, 0, 0])], d.bias[0]),
         sp.Add(d.input[0, 0, 0, 1] * d.weight[0, 0, 0, 0], d.bias[0])),
    ]:
        assert fast == slow and hash(fast) == hash(slow) and fast.args == slow.args
    for expr in entries(d.grad_weight):
        assert table.decode(table.encode(expr)) == expr


def test_poly_arithmetic_is_exact():
    x, y, z = (Poly.symbol(i) for i in range(3))
    assert (x + y) * (x - y) == x * x - y * y
    assert ((x + y) * z - x * z - y * z).is_zero and (x * y - y * x + z) == z and bool(z)
    assert (2 * (x * y)).terms == {(0, 1): 2} and (x * y * z).terms == {(0, 1, 2): 1}


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_ctrl_c_of_a_long_derivation_exits_130_with_one_line():
    # stderr is a terminal, so the CLI draws its bar: its first frame says the derivation is under way.
    master, slave = os.openpty()
    child = subprocess.Popen(
        [sys.executable, "-m", "symconv.cli", "derive", "--input", "160", "--kernel", "5", "--channels", "4",
         "--max-terms", "10000000"],
        stdout=subprocess.DEVNULL, stderr=slave, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 120
    while b"derive [" not in seen and time.monotonic() < deadline:
        if select.select([master], [], [], 1.0)[0]:
            seen += os.read(master, 4096)
    assert b"derive [" in seen, seen
    child.send_signal(signal.SIGINT)
    assert child.wait(timeout=60) == 130
    while select.select([master], [], [], 0.5)[0]:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the terminal closes with the child
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    text = seen.decode()
    assert "Traceback" not in text
    # After the bar is erased, one line remains (the terminal turns "\n" into "\r\n").
    assert "\x1b[K" in text and text.rsplit("\x1b[K", 1)[-1].split() == ["symconv:", "interrupted"]
