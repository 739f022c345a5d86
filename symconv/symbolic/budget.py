"""Budget: a ``ConvSpec`` -> the number of terms (and bytes) its derivation would create, checked against a limit.

The count is exact and costs O(min(kernel size, output size)) per axis: how many (output, tap) pairs fall inside
the input, counted along the shorter of the two, so a request that is too large is refused before a single
symbol exists, whatever its sizes (a 2**62 kernel on a 2**62 input is counted at once).
"""

from __future__ import annotations

import os
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
    """Σ over taps r of #{o < out : 0 <= o·s + r·d - p < size}, each count by integer arithmetic (summed over
    the outputs instead when there are fewer outputs than taps)."""
    if out < kernel:
        total = 0
        for o in range(out):
            start = o * stride - padding  # tap r reads start + r·d: 0 <= start + r·d < size
            first = max(0, -(start // dilation))
            last = min(kernel - 1, (size - 1 - start) // dilation)
            total += max(0, last - first + 1)
        return total
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
    memory = physical_memory()
    cap = limit if memory is None else min(limit, memory // BYTES_PER_TERM)
    # The exact count loops over min(kernel, output) per axis. Past a million (a 2**62 kernel on a 2**63 input)
    # the 2 terms per output of O and dE/db alone decide: too many already is refused uncounted, and a count
    # under the limit has at most that many outputs per axis to loop over.
    n, k, oh, ow = spec.output_shape
    least = 2 * n * k * oh * ow
    quick = all(min(spec.kernel_size[a], spec.output_size[a]) <= 10**6 for a in (0, 1))
    found = estimate(spec) if quick or least <= cap else None
    terms = least if found is None else found.terms
    would = f"{what} of {spec.describe()} would create {'at least ' * (found is None)}{terms:,} terms " \
            f"(about {_size(terms * BYTES_PER_TERM)})"
    advice = "prove every size without expanding anything with `symconv prove --all-sizes`"
    if terms > limit:
        raise TermLimitError(f"{would}, over the limit of {limit:,}; raise it with --max-terms or {keyword}=, "
                             f"or {advice}")
    if found is None or memory is not None and found.bytes > memory:  # whatever the limit: it could only thrash
        raise TermLimitError(f"{would}, more than the {_size(memory or 0)} of memory of this machine; {advice}")
    return found


def physical_memory() -> Optional[int]:
    """Bytes of RAM of this machine, or None where the system does not say (``sysconf`` is POSIX)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _size(count: int) -> str:
    return f"{count / 1e6:,.0f} MB" if count >= 10**6 else f"{count / 1e3:,.0f} kB"
