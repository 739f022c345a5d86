"""Training for real: the LeNet-style CNN on scikit-learn's digits in generated C, the CLI, and a missing extra."""

from __future__ import annotations

import functools
import sys

import numpy as np
import pytest

from conftest import STRICT_CFLAGS
from symconv import pipeline as compiled_network
from symconv.cli import main as cli_main
from symconv.train import MissingExtra, TrainConfig, load_digits_split, train


def test_default_run_reaches_97_percent_on_held_out_digits(kernel_cache: str) -> None:
    pytest.importorskip("sklearn")
    result = train(TrainConfig(), cflags=STRICT_CFLAGS)  # the full default run: about a second of training
    assert result.test_accuracy >= 0.97, result
    assert result.epoch_losses[-1] < result.epoch_losses[0] / 10


def test_split_is_seeded_standardized_and_disjoint() -> None:
    pytest.importorskip("sklearn")
    a, b = load_digits_split(seed=1), load_digits_split(seed=1)
    np.testing.assert_array_equal(a.test_x, b.test_x)
    assert a.train_x.shape == (1438, 1, 8, 8) and a.test_x.shape == (359, 1, 8, 8) and a.train_x.dtype == np.float32
    assert abs(float(a.train_x.mean())) < 1e-5 and abs(float(a.train_x.std()) - 1) < 1e-5
    assert a.test_y.dtype == np.int64 and set(np.unique(a.train_y)) == set(range(10))


def test_cli_train_prints_progress_and_accuracy(kernel_cache: str, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("sklearn")
    # The same strict flags as every test build, so the CLI reuses the modules the test above compiled.
    monkeypatch.setattr(compiled_network, "compile_network",
                        functools.partial(compiled_network.compile_network, cflags=STRICT_CFLAGS))
    assert cli_main(["train", "--epochs", "2", "--lr", "0.1"]) == 0
    out = capsys.readouterr().out
    assert "epoch   2/2 [##############################]   44/44 loss" in out
    assert "test accuracy" in out and "(held-out 20%)" in out


def test_a_missing_scikit_learn_is_a_clear_error(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "sklearn", None)  # import sklearn now raises ImportError
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(MissingExtra, match=r"pip install 'symconv\[examples\]'"):
        load_digits_split()
    assert cli_main(["train", "--epochs", "1"]) == 2
    assert "needs scikit-learn" in capsys.readouterr().err


def test_bad_hyperparameters_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    for lr in (0, -1.0, float("nan"), float("inf")):  # each message names the field, as the flag does
        with pytest.raises(ValueError, match="^lr must be a finite number > 0"):
            TrainConfig(lr=lr)
    for name, value in (("epochs", 0), ("batch", -1), ("threads", 0), ("seed", -1), ("test_fraction", 1.0)):
        with pytest.raises(ValueError, match=f"^{name} "):
            TrainConfig(**{name: value})
    for name, value in (("threads", True), ("batch", "2"), ("epochs", 2.7), ("lr", "0.1")):
        with pytest.raises(TypeError, match=f"^{name} "):
            TrainConfig(**{name: value})
    for flag, value in (("--batch", "0"), ("--lr", "nan"), ("--lr", "inf"), ("--epochs", "-3"), ("--threads", "0")):
        assert cli_main(["train", flag, value]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"argument {flag}:" in err
