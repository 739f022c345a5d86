"""Write: a ``Network``, its parameters and options -> the exported C library's directory on disk (its paths).

``export_network`` lays the library out (``layout``), proves its layers on their shapes when asked, runs Python's
compiled network (``Network.compile``) on a few seeded batches for the host test, and writes every file ``emit``
renders. Nothing is compiled here but Python's own network, for the host test's expected values.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

from ..proofs.layers import STATEMENTS, prove_layer, prove_loss
from ..symbolic.network import Network
from .emit import TestData, render_library
from .layout import Library, plan_library

__all__ = ["export_network", "proof_lines", "test_data", "flat_params"]


def flat_params(lib: Library, params: Mapping[str, np.ndarray]) -> np.ndarray:
    """Parameters keyed as PyTorch's -> the library's one flat array (its ``<NAME>_*_OFFSET`` layout)."""
    parts = [np.asarray(params[p.key], dtype=lib.dtype).ravel() for p in lib.params]
    return np.concatenate(parts) if parts else np.zeros(0, lib.dtype)


def proof_lines(network: Network, prove: bool, seed: int = 0) -> list[str]:
    """One line per layer and the loss: what symconv proves for it and, with ``prove``, whether it held here."""
    lines = []
    for i, layer in enumerate(network.body):
        statements = "; ".join(STATEMENTS.get(type(layer).__name__, {}).values()) or "no parameters, no gradient"
        verdict = ""
        if prove:
            verdict = " [holds on this shape]" if prove_layer(layer, network.shapes[i], seed).holds else " [FAILS]"
        lines.append(f"layer {i} {layer.describe()}: {statements}{verdict}")
    verdict = ""
    if prove:
        verdict = " [holds on this shape]" if prove_loss(network.loss, network.shapes[-1], seed).holds else " [FAILS]"
    lines.append(f"loss {network.loss.describe()}: its closed-form gradient dE/dy{verdict}")
    lines.append("checked at export: yes (symconv.proofs.layers.prove_layer, prove_loss)" if prove else
                 "checked at export: no (symconv export --prove runs prove_layer and prove_loss on these shapes)")
    return lines


def test_data(network: Network, lib: Library, params: Mapping[str, np.ndarray], steps: int, learning_rate: float,
              seed: int = 0, batches: Optional[tuple[np.ndarray, np.ndarray]] = None,
              **compile_options: Any) -> TestData:
    """Seeded batches (or the given ``batches``: inputs (steps, *input_shape), targets) and what Python's compiled
    network computes for them: the first batch's forward and gradients, the loss of each SGD step, the end state."""
    rng = np.random.default_rng(seed)
    shape, out = network.input_shape, network.shapes[-1]
    if batches is None:
        inputs = rng.standard_normal((steps, *shape)).astype(lib.dtype)
        targets = (rng.integers(0, out[1], (steps, out[0])) if lib.labels
                   else rng.standard_normal((steps, *out)).astype(lib.dtype))
    else:
        inputs, targets = np.asarray(batches[0], dtype=lib.dtype), np.asarray(batches[1])
        if inputs.shape != (steps, *shape):
            raise ValueError(f"test batches must have shape {(steps, *shape)}, got {inputs.shape}")
    net = network.compile(lib.dtype, params=params, **compile_options)
    first = net.backward(np.ascontiguousarray(inputs[0]), targets[0])
    output = net.forward(np.ascontiguousarray(inputs[0]))
    losses = [net.step(np.ascontiguousarray(inputs[k]), targets[k], learning_rate) for k in range(steps)]
    tolerance = 1e-4 if lib.dtype == "float32" else 1e-10
    return TestData(flat_params(lib, params), inputs, np.asarray(targets, dtype=np.int64 if lib.labels else lib.dtype),
                    output, first.input if first.input is not None else np.zeros(shape, lib.dtype),
                    flat_params(lib, first.params), np.asarray(losses, dtype=lib.dtype), flat_params(lib, net.params),
                    learning_rate, tolerance, 10 * tolerance)


def export_network(network: Network, directory: os.PathLike[str] | str, name: str = "net", *,
                   params: Optional[Mapping[str, np.ndarray]] = None, seed: int = 0, dtype: str = "float32",
                   strategy: Optional[str] = None, weights: bool = True, test_steps: int = 3,
                   learning_rate: float = 0.1, prove: bool = False,
                   test_batches: Optional[tuple[np.ndarray, np.ndarray]] = None,
                   **compile_options: Any) -> list[Path]:
    """Write the C library of ``network`` into ``directory``; return the paths written.

    ``params`` (keyed as ``Network.parameter_shapes``) default to ``network.init_params(seed)``; ``weights=False``
    leaves out ``<name>_weights.c`` (train from ``<name>_init_params``). ``test_steps`` > 0 writes the host test
    (``<name>_test.c`` and Python's data for it, ``test_steps`` SGD steps at ``learning_rate``; this compiles the
    network in Python, with ``compile_options``); 0 leaves it out. ``prove`` proves every layer on its shape first.
    """
    if not name.isidentifier() or not name.isascii():
        raise ValueError(f"the library name must be a C identifier, got {name!r}")
    if test_steps < 0:
        raise ValueError(f"test_steps must be >= 0, got {test_steps}")
    lib = plan_library(network, dtype, strategy)
    chosen = network.init_params(seed) if params is None else params
    expected = network.parameter_shapes()
    if set(chosen) != set(expected) or any(np.shape(chosen[k]) != s for k, s in expected.items()):
        raise ValueError(f"params must be arrays of the shapes {expected}")
    owned = {k: np.asarray(v, dtype=dtype) for k, v in chosen.items()}
    test = None
    if test_steps:
        test = test_data(network, lib, owned, test_steps, learning_rate, seed, test_batches, **compile_options)
    source = "given" if params is not None else f"Network.init_params(seed={seed})"
    files = render_library(lib, name, owned if weights else None, proof_lines(network, prove, seed), test, source)
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    paths = []
    for file_name, text in files.items():
        path = target / file_name
        path.write_text(text, newline="\n")
        paths.append(path)
    return paths
