import subprocess
import sys

import pytest

from symconv.cli import main


def test_derive_prints_the_textbook_equations(capsys):
    assert main(["derive"]) == 0
    out = capsys.readouterr().out
    assert "O_{11} = F_{11}*X_{11} + F_{12}*X_{12} + F_{21}*X_{21} + F_{22}*X_{22} + b" in out
    assert "dE/dX_{11} = dE/dO_{11}*dO_{11}/dX_{11} + dE/dO_{12}*dO_{12}/dX_{11}" in out
    assert "= dE/dO_{11}*F_{11} + dE/dO_{12}*0 + dE/dO_{21}*0 + dE/dO_{22}*0" in out


def test_prove_exit_status(capsys):
    assert main(["prove", "--input", "6x6", "--kernel", "3x3", "--stride", "2"]) == 0
    assert capsys.readouterr().out.count("[ok]") == 8


def test_prove_exits_1_when_an_identity_fails(monkeypatch, capsys):
    from symconv import forms

    monkeypatch.setattr(forms, "rot180", lambda m: m)
    assert main(["prove"]) == 1
    assert "FAIL" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["prove", "--input", "2x2", "--kernel", "3x3"], "kernel_size"),
        (["prove", "--stride", "0"], "stride"),
        (["prove", "--input", "3x3x3"], "--input"),
        (["prove", "--channels", "two"], "--channels"),
        (["derive", "--bogus"], "unrecognized"),
        (["nothing"], "invalid choice"),
        ([], "required"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_console_script_runs_as_a_module():
    result = subprocess.run(
        [sys.executable, "-m", "symconv.cli", "prove", "--padding", "5"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.startswith("symconv: error: padding")


def test_demo_runs_the_textbook_kernels_beside_the_derivation(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    # the seeds' textbook case: no bias, so no "+ b", no dE/db and no grad_bias identity
    assert "O_{11} = F_{11}*X_{11} + F_{12}*X_{12} + F_{21}*X_{21} + F_{22}*X_{22}\n" in out
    assert out.count("[ok]") == 7 and "grad_bias" not in out and "dE/db" not in out
    assert "dE/dX_{33}" in out and "every entry matches" in out
    assert main(["demo", "--bias"]) == 0
    out = capsys.readouterr().out
    assert "+ b" in out or "*X_{22} + b" in out
    assert out.count("[ok]") == 8


def test_demo_table_flags_a_kernel_that_disagrees(monkeypatch):
    from symconv import ConvSpec, demo, derive

    real = demo.compile_conv

    class OffByOne:
        def __init__(self, kernels):
            self._k = kernels
            self.strategy = kernels.strategy

        def __getattr__(self, name):
            return getattr(self._k, name)

        def grad_input(self, dy, w):
            out = self._k.grad_input(dy, w)
            out[0, 0, 0, 0] += 1.0
            return out

    monkeypatch.setattr(demo, "compile_conv", lambda spec, dtype: OffByOne(real(spec, dtype)))
    table, ok = demo.numeric_comparison(derive(ConvSpec((3, 3), (2, 2))))
    assert not ok and "<- differs" in table and "MISMATCH" in table
