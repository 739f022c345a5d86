"""Benchmark: the proofs for every size -> a table of seconds per identity, against the targets (1 s, 10 s).

Run by ``symconv bench --general``; it times, it does not test (the suite has no timed test).
"""

from __future__ import annotations

import time
from typing import Any, Optional

from .layer_report import prove_general_layer
from .layer_spec import FLAT
from .layer_theorems import LAYER_IDENTITIES
from .report import GeneralProofReport, prove_general
from .theorems import IDENTITY_NAMES

__all__ = ["CONFIGURATIONS", "LAYER_CONFIGURATIONS", "general_table", "layer_table", "IDENTITY_TARGET", "REPORT_TARGET"]

IDENTITY_TARGET = 1.0
REPORT_TARGET = 10.0
CONFIGURATIONS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("2-D, all symbolic", {}),
    ("2-D, convolution", {"flip": True}),
    ("2-D, s=2, d=1", {"stride": 2, "dilation": 1}),
    ("1-D, one channel", {"axes": 1, "channels": False}),
)
"""(column title, options of ``prove_general``): the first is the theorem of the README."""


LAYER_CONFIGURATIONS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("2-D, all symbolic", {}),
    ("2-D, k=3, s=2", {"kernel_size": 3, "stride": 2}),
    ("1-D", {"axes": 1}),
)
"""(column title, options of ``prove_general_layer``; the window options for pooling only)."""


def layer_table() -> tuple[str, bool]:
    """The layers' theorems (ReLU, pooling, dense, MSE): seconds per identity, and whether each was proved."""
    rows, ok, walls = [], True, [0.0] * len(LAYER_CONFIGURATIONS)
    for layer, names in LAYER_IDENTITIES.items():
        reports: list[Optional[GeneralProofReport]] = []
        for column, (_, options) in enumerate(LAYER_CONFIGURATIONS):
            windowless = layer not in ("maxpool", "avgpool") and set(options) - {"axes"}
            if windowless or (layer in FLAT and "axes" in options):
                reports.append(None)
                continue
            start = time.perf_counter()
            report = prove_general_layer(layer, **options)
            walls[column] += time.perf_counter() - start
            ok = ok and report.holds
            reports.append(report)
        for name in names:
            cells = []
            for done in reports:
                if done is None:
                    cells.append("-".rjust(22))
                    continue
                p = done[name]
                mark = "" if p.holds else f" {p.verdict.upper()}"
                cells.append(f"{p.seconds:.2f} s{'!' if p.seconds >= IDENTITY_TARGET else ''}{mark}".rjust(22))
            rows.append(f"{layer} {name}".ljust(26) + "".join(cells))
    lines = ["layer identity".ljust(26) + "".join(f"{t:>22}" for t, _ in LAYER_CONFIGURATIONS)] + rows
    lines.append("all layers".ljust(26) + "".join(f"{w:.2f} s".rjust(22) for w in walls))
    lines.append(f"{'every layer identity proved' if ok else 'NOT every layer identity proved'}")
    return "\n".join(lines), ok


def general_table() -> tuple[str, bool]:
    """The table, and whether every identity was proved in every configuration."""
    columns, ok = [], True
    for title, options in CONFIGURATIONS:
        start = time.perf_counter()
        report = prove_general(**options)
        wall = time.perf_counter() - start
        ok = ok and report.holds
        columns.append((title, report, wall))
    width = max(len(n) for n in IDENTITY_NAMES) + 2
    lines = ["identity".ljust(width) + "".join(f"{t:>22}" for t, _, _ in columns)]
    for name in IDENTITY_NAMES:
        cells = []
        for _, report, _ in columns:
            p = report[name]
            mark = "" if p.holds else f" {p.verdict.upper()}"
            slow = "!" if p.seconds >= IDENTITY_TARGET else ""
            cells.append(f"{p.seconds:.2f} s{slow}{mark}".rjust(22))
        lines.append(name.ljust(width) + "".join(cells))
    lines.append("whole report".ljust(width) + "".join(
        f"{wall:.2f} s{'!' if wall >= REPORT_TARGET else ''}".rjust(22) for _, _, wall in columns))
    solvers = ["+".join(dict.fromkeys(s for p in r.proofs for s in p.solvers)) for _, r, _ in columns]
    lines.append("solvers".ljust(width) + "".join(s.rjust(22) for s in solvers))
    lines.append(f"targets: each identity < {IDENTITY_TARGET:.0f} s, the whole report < {REPORT_TARGET:.0f} s "
                 f"('!' marks a miss); {'every identity proved' if ok else 'NOT every identity proved'}")
    layers, layers_ok = layer_table()
    return "\n".join(lines) + "\n\n" + layers, ok and layers_ok
