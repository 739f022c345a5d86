"""Benchmarks: a suite of shapes -> a table of measured times (symbolic derivation and proof)."""

from __future__ import annotations

import time

from .derive import derive
from .prove import prove
from .spec import ConvSpec
from .symbols import positions

__all__ = ["SYMBOLIC_SUITE", "symbolic_table"]

SYMBOLIC_SUITE: tuple[ConvSpec, ...] = (
    ConvSpec((3, 3), (2, 2)),
    ConvSpec((6, 6), (3, 3), stride=2),
    ConvSpec((8, 8), (3, 3), padding=1, in_channels=2, out_channels=2, batch=2),
    ConvSpec((16, 16), (3, 3), stride=2),
    ConvSpec((32, 32), (5, 5), stride=2),
    ConvSpec((48, 48), (5, 5), stride=2),
    ConvSpec((64, 64), (5, 5), stride=2),
)


def _row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(c.rjust(w) for c, w in zip(cells, widths))


def symbolic_table(quick: bool = False) -> str:
    """Time ``derive`` and ``prove`` for each spec of the suite; one row each, with the number of products
    (multiply-adds of the forward pass) so that the growth of time with size can be read off."""
    suite = [s for s in SYMBOLIC_SUITE if not quick or s.input_size[0] <= 16]
    header = ["layer", "products", "derive s", "prove s", "total s", "us/product", "holds"]
    rows = []
    for spec in suite:
        start = time.perf_counter()
        d = derive(spec)
        derived = time.perf_counter()
        report = prove(d)
        proved = time.perf_counter()
        products = sum(len(d.forward_terms(p)) - 1 for p in positions(spec.output_shape))
        total = proved - start
        rows.append(
            [
                spec.describe().replace(", cross-correlation", ""),
                str(products),
                f"{derived - start:.3f}",
                f"{proved - derived:.3f}",
                f"{total:.3f}",
                f"{1e6 * total / products:.0f}",
                "yes" if report.holds else "NO",
            ]
        )
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join([_row(header, widths), *(_row(r, widths) for r in rows)])
