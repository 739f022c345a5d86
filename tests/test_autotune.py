"""Autotuning: winners are the fastest recorded medians, tuned kernels match the reference, records are reused
only when whole, and a candidate that disagrees with the reference is refused."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from conftest import STRICT_CFLAGS
from symconv import ConvSpec, Tuning, compile_conv, tune
from symconv import pipeline as codegen
from symconv.codegen.lowering import STRATEGIES, UNROLL_LIMIT, multiply_adds
from symconv.symbolic.reference import conv2d_forward, conv2d_grad_bias, conv2d_grad_input, conv2d_grad_weight
from symconv.tuning import autotune, benchmark
from symconv.tuning.autotune import TuningError

LAYER = ConvSpec((8, 8), (3, 3), padding=1, in_channels=2, out_channels=4, batch=2)  # above UNROLL_LIMIT
SMALL = ConvSpec((5, 5), (3, 3), padding=1, in_channels=2, out_channels=2)  # at most UNROLL_LIMIT: 4 candidates
OPTIONS: dict[str, Any] = dict(threads=1, cflags=STRICT_CFLAGS)
UNIT = {"float32": 2.0**-24, "float64": 2.0**-53}
DENSE = tuple(s for s in STRATEGIES if s not in ("depthwise", "pointwise"))  # the strategies of a 3x3 dense layer


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every module these tests use, compiled once; each test copies them into its own cache."""
    root = tmp_path_factory.mktemp("autotune-modules")
    jobs = [(LAYER, "float32", ("gemm", "direct")), (LAYER, "float64", ("gemm", "direct")),
            (SMALL, "float32", DENSE)]
    for spec, dtype, strategies in jobs:
        for strategy in strategies:
            compile_conv(spec, dtype, strategy, cache_dir=root, **OPTIONS)
    compile_conv(LAYER, "float32", "gemm", cache_dir=root, fuse_relu=True, **OPTIONS)
    return root


@pytest.fixture
def cache(tmp_path: Path, built: Path) -> Path:
    """A private cache (tmp_path) holding the compiled modules and no tuning record."""
    for part in ("modules", "index"):
        shutil.copytree(built / part, tmp_path / part)
    return tmp_path


def counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the timing runs (benchmark.measure, which stays real)."""
    calls: list[int] = []
    real = benchmark.measure

    def measure(*args: Any) -> dict[tuple[str, str], float]:
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(benchmark, "measure", measure)
    return calls


def forbid(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    def boom(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("called although a valid tuning record exists")

    for module, name in [(benchmark, "measure"), (codegen, "compile_conv")]:
        if name in names:
            monkeypatch.setattr(module, name, boom)


@pytest.mark.parametrize("spec", [LAYER, SMALL], ids=["8x8-C2-K4-N2", "5x5-C2-K2"])
def test_each_winner_is_a_candidate_with_the_lowest_recorded_median(spec: ConvSpec, cache: Path) -> None:
    tuning = tune(spec, cache_dir=cache, **OPTIONS)
    expected = DENSE if multiply_adds(spec) <= UNROLL_LIMIT else ("gemm", "direct")
    assert tuning.candidates == expected
    assert tuning.record is not None and tuning.record.parent == cache / "tuned"
    record = json.loads(tuning.record.read_text())
    assert record["candidates"] == list(expected) and record["threads"] == 1 and record["dtype"] == "float32"
    seconds = record["seconds"]
    assert sorted(seconds) == sorted(expected)
    for name in ("forward", "grad_input", "grad_weight"):
        winner = record["winners"][name]
        assert winner in expected
        assert seconds[winner][name] == min(seconds[s][name] for s in expected)
        assert all(0 < seconds[s][name] < 0.1 for s in expected)
        assert tuning.winners[name] == winner and tuning.seconds[winner][name] == seconds[winner][name]
    assert tuning.winners["grad_bias"] == tuning.winners["forward"] == record["winners"]["grad_bias"]
    table = str(tuning).splitlines()
    assert table[1].split() == ["strategy", "forward", "µs", "grad_input", "µs", "grad_weight", "µs"]
    assert [line.split()[0] for line in table[2:-1]] == list(expected)
    assert sum(line.count("*") for line in table[2:-1]) == 3


def _bound(terms: int, dtype: str, magnitude: np.ndarray) -> float:
    """gamma_m (sum of |terms|) of the kernel plus the same for the float64 reference."""
    gamma = sum(terms * u / (1 - terms * u) for u in (UNIT[dtype], UNIT["float64"]))
    return gamma * float(magnitude.max())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_mixed_winners_match_the_reference(dtype: str, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Fixed medians make every timed pass pick a different strategy than its neighbour: the mixed object.
    fastest = {"forward": "gemm", "grad_input": "direct", "grad_weight": "gemm"}
    monkeypatch.setattr(benchmark, "measure", lambda impls, *rest: {
        (s, name): 1e-6 if fastest[name] == s else 2e-6 for s in impls for name in impls[s]})
    k = autotune.tuned_kernels(LAYER, dtype, cache_dir=cache, **OPTIONS)
    assert tune(LAYER, dtype, cache_dir=cache, **OPTIONS).winners == {**fastest, "grad_bias": "gemm"}
    assert k is autotune.tuned_kernels(LAYER, dtype, cache_dir=cache, **OPTIONS)  # the in-process memo
    assert k.strategy == "gemm" and k.module is compile_conv(LAYER, dtype, "gemm", cache_dir=cache, **OPTIONS).module
    assert k.grad_input is compile_conv(LAYER, dtype, "direct", cache_dir=cache, **OPTIONS).grad_input
    assert k.strategies == {**fastest, "grad_bias": "gemm"}
    assert k.with_threads(2).strategies == k.strategies  # the mix survives a new thread count

    rng = np.random.default_rng(7)
    x, w, dy = (rng.standard_normal(shape).astype(dtype)
                for shape in (LAYER.input_shape, LAYER.weight_shape, LAYER.output_shape))
    b = rng.standard_normal(LAYER.out_channels).astype(dtype)
    r, s = LAYER.kernel_size
    per_output = LAYER.batch * math.prod(LAYER.output_size)
    x64, w64, b64, dy64 = (a.astype(np.float64) for a in (x, w, b, dy))
    checks = [
        (k.forward(x, w, b), conv2d_forward(LAYER, x64, w64, b64),
         _bound(LAYER.in_channels * r * s + 1, dtype, conv2d_forward(LAYER, abs(x64), abs(w64), abs(b64)))),
        (k.grad_input(dy, w), conv2d_grad_input(LAYER, dy64, w64),
         _bound(LAYER.out_channels * r * s, dtype, conv2d_grad_input(LAYER, abs(dy64), abs(w64)))),
        (k.grad_weight(x, dy), conv2d_grad_weight(LAYER, x64, dy64),
         _bound(per_output, dtype, conv2d_grad_weight(LAYER, abs(x64), abs(dy64)))),
        (k.grad_bias(dy), conv2d_grad_bias(LAYER, dy64), _bound(per_output, dtype, conv2d_grad_bias(LAYER, abs(dy64)))),
    ]
    for got, exact, bound in checks:
        assert got.dtype == dtype
        np.testing.assert_allclose(got, exact, rtol=0, atol=bound)
    dx = np.empty(LAYER.input_shape, dtype)
    np.testing.assert_array_equal(k.bind("grad_input", dy, w, out=dx)(), checks[1][0])  # the winner's kernel
    np.testing.assert_array_equal(k.with_threads(2).grad_input(dy, w), checks[1][0])
    if dtype == "float32":  # the forward winner is compiled with the fused ReLU when asked for
        fused = autotune.tuned_kernels(LAYER, dtype, cache_dir=cache, fuse_relu=True, **OPTIONS)
        assert fused.fuse_relu and fused.grad_input is k.grad_input
        np.testing.assert_allclose(fused.forward_relu(x, w, b), np.maximum(checks[0][1], 0), rtol=0, atol=checks[0][2])


def test_a_second_tune_reads_the_record_and_times_nothing(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = tune(LAYER, cache_dir=cache, **OPTIONS)
    forbid(monkeypatch, "measure", "compile_conv")
    again = tune(LAYER, cache_dir=cache, **OPTIONS)
    assert again == first and again.seconds == first.seconds and again.record == first.record
    # The candidates name a set: another order finds the same record.
    assert tune(LAYER, cache_dir=cache, candidates=["direct", "gemm"], **OPTIONS) == first


def test_other_inputs_get_their_own_record(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = counting(monkeypatch)
    first = tune(LAYER, cache_dir=cache, **OPTIONS)
    only = tune(LAYER, cache_dir=cache, candidates=["direct"], **OPTIONS)
    assert len(calls) == 2 and only.record != first.record
    assert only.candidates == ("direct",) and set(only.winners.values()) == {"direct"}


def test_retune_times_again(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = counting(monkeypatch)
    first = tune(LAYER, cache_dir=cache, **OPTIONS)
    tune(LAYER, cache_dir=cache, **OPTIONS)
    assert len(calls) == 1
    again = tune(LAYER, cache_dir=cache, retune=True, **OPTIONS)
    assert len(calls) == 2 and again.record == first.record
    assert json.loads(first.record.read_text())["seconds"] == {s: dict(t) for s, t in again.seconds.items()}


def _truncated(text: str) -> str:
    return text[: len(text) // 2]


def _edited(change: Callable[[dict], None]) -> Callable[[str], str]:
    def edit(text: str) -> str:
        data = json.loads(text)
        change(data)
        return json.dumps(data)

    return edit


BROKEN = {
    "truncated": (_truncated, "not valid JSON"),
    "not-json": (lambda text: "<html>teapot</html>", "not valid JSON"),
    "not-an-object": (lambda text: "[1, 2]", "expected a JSON object"),
    "threads-as-text": (_edited(lambda d: d.update(threads="1")), "'threads'"),
    "seconds-as-text": (_edited(lambda d: d["seconds"]["gemm"].update(forward="fast")), "seconds of 'gemm'"),
    "negative-seconds": (_edited(lambda d: d["seconds"]["direct"].update(grad_input=-1.0)), "seconds of 'direct'"),
    "unknown-strategy": (_edited(lambda d: d["winners"].update(forward="bogus")), "'bogus'"),
    "not-a-candidate": (_edited(lambda d: d["winners"].update(grad_weight="unrolled")), "'unrolled'"),
    "missing-winners": (_edited(lambda d: d.pop("winners")), "'winners'"),
}


@pytest.mark.parametrize("damage", list(BROKEN))
def test_a_broken_record_warns_and_is_retuned(damage: str, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    record = tune(LAYER, cache_dir=cache, **OPTIONS).record
    assert record is not None
    corrupt, problem = BROKEN[damage]
    record.write_text(corrupt(record.read_text()))
    calls = counting(monkeypatch)
    with pytest.warns(UserWarning, match=record.name) as caught:
        tuning = tune(LAYER, cache_dir=cache, **OPTIONS)
    assert len(calls) == 1 and problem in str(caught[0].message)
    assert json.loads(record.read_text())["winners"] == dict(tuning.winners)  # overwritten by a whole record
    forbid(monkeypatch, "measure")
    assert tune(LAYER, cache_dir=cache, **OPTIONS) == tuning


@pytest.mark.parametrize("candidates, message", [
    (["bogus"], "unknown candidate strategies \\['bogus'\\]"),
    (["gemm", "tuned"], "'tuned'"),
    ([], "at least one"),
    ("gemm", "the string 'gemm'"),
])
def test_bad_candidates_are_refused_before_anything_runs(candidates: Any, message: str, cache: Path) -> None:
    with pytest.raises(ValueError, match=message):
        tune(LAYER, cache_dir=cache, candidates=candidates, **OPTIONS)
    assert not (cache / "tuned").exists()


def test_a_candidate_that_disagrees_is_never_chosen(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = codegen.compile_conv

    def compile_with_a_bug(spec: ConvSpec, dtype: str, strategy: str, **options: Any) -> Any:
        kernels = real(spec, dtype, strategy, **options)
        if strategy != "gemm":
            return kernels
        broken = replace(kernels)  # its own closures: the cached object stays intact
        good = broken.grad_input
        object.__setattr__(broken, "grad_input", lambda dy, w, out=None: good(dy, w, out) * 1.001)
        return broken

    monkeypatch.setattr(codegen, "compile_conv", compile_with_a_bug)
    forbid(monkeypatch, "measure")
    with pytest.raises(TuningError, match="strategy 'gemm' disagrees with the NumPy reference on grad_input"):
        tune(LAYER, cache_dir=cache, **OPTIONS)
    assert not list((cache / "tuned").glob("*.json"))


def test_tuning_is_exported_and_frozen() -> None:
    import symconv

    assert {"tune", "Tuning"} <= set(symconv.__all__) and symconv.tune is autotune.tune
    passes = ("forward", "grad_input", "grad_weight", "grad_bias")
    tuning = Tuning(LAYER, "float32", 1, ("direct",), {p: "direct" for p in passes},
                    {"direct": {p: 1e-6 for p in autotune.TIMED_PASSES}})
    with pytest.raises(TypeError):
        tuning.winners["forward"] = "gemm"  # type: ignore[index]
    assert hash(tuning) == hash(replace(tuning))
