"""Budget: a ``ConvSpec`` -> the number of terms (and bytes) its derivation would create, checked against a limit.

The count is exact and costs O(kernel size): per axis, how many (output, tap) pairs fall inside the input,
so a request that is too large is refused before a single symbol exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from .spec import ConvSpec

__all__ = ["DEFAULT_MAX_TERMS", "BYTES_PER_TERM", "Estimate", "TermLimitError", "estimate", "check_budget", "Progress"]

DEFAULT_MAX_TERMS = 400_000
"""Terms a request may create unless told otherwise: 32x32 inputs with 3x3 kernels and 4 channels in and out
(396,000 terms) still pass, which took about 10 s and 160 MB (tracemalloc peak) to derive and prove on the
2-core development machine."""

BYTES_PER_TERM = 550
"""Peak bytes per term of ``derive`` then ``prove``, measured with tracemalloc: 530 at 64x64 and 516 at 128x128
with a 5x5 kernel and stride 2, 409 at 32x32 with a 3x3 kernel and 4 channels in and out; rounded up."""

Progress = Callable[[str, int, int], None]
"""A progress callback: (stage, done, total), called as a long derivation or proof advances."""


@dataclass(frozen=True)
class Estimate:
    """What a derivation of one spec creates: ``products`` of the forward pass and ``terms`` of all its sums."""

    products: int
    terms: int

    @property
    def bytes(self) -> int:
        return self.terms * BYTES_PER_TERM


class TermLimitError(ValueError):
    """A request that would create more terms than its limit allows; the message is one line."""


def _taps_inside(size: int, out: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """Σ over taps r of #{o < out : 0 <= o·s + r·d - p < size}, each count by integer arithmetic."""
    count = 0
    for r in range(kernel):
        offset = r * dilation - padding  # the same set of offsets for flipped kernels, walked backwards
        first = max(0, -(offset // stride))  # the first o with o·s + offset >= 0
        last = min(out - 1, (size - 1 - offset) // stride)
        count += max(0, last - first + 1)
    return count


def estimate(spec: ConvSpec) -> Estimate:
    """The exact number of products and of terms (O, dE/dX, dE/dF hold every product once, O and dE/db the bias).

    A product of output channel k reads only the input channels of k's group.

    >>> estimate(ConvSpec((3, 3), (2, 2)))
    Estimate(products=16, terms=56)
    >>> estimate(ConvSpec((3, 3), (2, 2), bias=False))
    Estimate(products=16, terms=48)
    """
    axes = [
        _taps_inside(spec.input_size[a], spec.output_size[a], spec.kernel_size[a], spec.stride[a],
                     spec.pad_begin[a], spec.dilation[a])
        for a in (0, 1)
    ]
    products = spec.batch * spec.out_channels * spec.group_in_channels * axes[0] * axes[1]
    outputs = spec.batch * spec.out_channels * spec.output_size[0] * spec.output_size[1]
    return Estimate(products, 3 * products + (2 * outputs if spec.bias else 0))


def check_budget(spec: ConvSpec, max_terms: Optional[int], what: str, keyword: str = "max_terms") -> Estimate:
    """Refuse, in one line naming the estimate, the limit and how to raise it, a request over ``max_terms``."""
    limit = DEFAULT_MAX_TERMS if max_terms is None else max_terms
    found = estimate(spec)
    if found.terms > limit:
        raise TermLimitError(
            f"{what} of {spec.describe()} would create {found.terms:,} terms (about {_size(found.bytes)}), "
            f"over the limit of {limit:,}; raise it with --max-terms or {keyword}=, "
            f"or prove every size without expanding anything with `symconv prove --all-sizes`"
        )
    return found


def _size(count: int) -> str:
    return f"{count / 1e6:,.0f} MB" if count >= 10**6 else f"{count / 1e3:,.0f} kB"
