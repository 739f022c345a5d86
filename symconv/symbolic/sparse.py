"""Sparse exact polynomials: SymPy sums of products of symbols <-> ``Poly`` (monomial -> integer coefficient).

Every entry of a convolution layer is a sum of products of two symbols (three in the adjoint identities), each
with an integer coefficient. ``Poly`` keeps exactly that, a dictionary from sorted tuples of symbol ids to
integers, so adding and multiplying are dictionary operations instead of SymPy's canonicalisation; two
``Poly``s are equal iff they are the same polynomial, which makes comparing them an exact proof.
``SymbolTable`` converts both ways, and builds SymPy's own canonical trees from the known structure.
"""

from __future__ import annotations

from functools import cmp_to_key
from typing import Iterable, Iterator, Sequence

import sympy as sp

__all__ = ["Poly", "SymbolTable"]

Monomial = tuple[int, ...]


class Poly:
    """An exact polynomial in numbered symbols: ``{(i, j, ...): coefficient}``, monomials sorted, no zeros.

    >>> x, y = Poly.symbol(0), Poly.symbol(1)
    >>> (x * y + y * x - 2 * (x * y)).is_zero, (x * y).terms
    (True, {(0, 1): 1})
    """

    # ``atom`` is the symbol's id for a lone symbol with coefficient 1, else -1: the factors of nearly every
    # product the proofs form, which ``dot`` then multiplies without looking into their dictionaries.
    __slots__ = ("terms", "atom")

    def __init__(self, terms: dict[Monomial, int], atom: int = -1) -> None:
        self.terms = terms
        self.atom = atom

    @staticmethod
    def symbol(index: int) -> "Poly":
        return Poly({(index,): 1}, index)

    @staticmethod
    def sum(polys: Iterable["Poly"]) -> "Poly":
        """Σ polys, accumulated in one dictionary (a chain of ``+`` would copy it every time)."""
        total: dict[Monomial, int] = {}
        for p in polys:
            for m, c in p.terms.items():
                total[m] = total.get(m, 0) + c
        return Poly({m: c for m, c in total.items() if c})

    @staticmethod
    def dot(pairs: Iterable[tuple["Poly", "Poly"]]) -> "Poly":
        """Σ a·b over the pairs, multiplied and accumulated in one dictionary (no ``Poly`` per product)."""
        total: dict[Monomial, int] = {}
        get = total.get
        m: Monomial
        for a, b in pairs:
            i, j = a.atom, b.atom
            if i >= 0 and j >= 0:
                m = (i, j) if i <= j else (j, i)
                total[m] = get(m, 0) + 1
                continue
            for m1, c1 in a.terms.items():
                for m2, c2 in b.terms.items():
                    if len(m1) == len(m2) == 1:  # the common case: a symbol times a symbol, no sort
                        m = m1 + m2 if m1[0] <= m2[0] else m2 + m1
                    else:
                        m = tuple(sorted(m1 + m2))
                    total[m] = total.get(m, 0) + c1 * c2
        return Poly({m: c for m, c in total.items() if c})

    @staticmethod
    def inner(a: Iterable[object], b: Iterable[object]) -> "Poly":
        """<a, b> = Σ a_i·b_i of two sequences of ``Poly``s (a closed form's structural zeros skipped)."""
        def products() -> Iterator[tuple[Poly, Poly]]:
            for x, y in zip(a, b, strict=True):
                if isinstance(x, Poly) and isinstance(y, Poly):
                    yield x, y
                elif x != 0 and y != 0:
                    raise TypeError(f"inner product of {x!r} and {y!r}: neither is a Poly or zero")
        return Poly.dot(products())

    @property
    def is_zero(self) -> bool:
        return not self.terms

    def __bool__(self) -> bool:
        return bool(self.terms)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Poly):
            return self.terms == other.terms
        return other == 0 and not self.terms

    def __hash__(self) -> int:
        return hash(frozenset(self.terms.items()))

    def __add__(self, other: object) -> "Poly":
        if not isinstance(other, Poly):
            if other == 0:  # a structural zero of the closed forms (padding, dilation)
                return self
            return NotImplemented
        return Poly.sum((self, other))

    __radd__ = __add__

    def __neg__(self) -> "Poly":
        return Poly({m: -c for m, c in self.terms.items()})

    def __sub__(self, other: object) -> "Poly":
        if not isinstance(other, Poly):
            return self + other
        return Poly.sum((self, -other))

    def __mul__(self, other: object) -> "Poly":
        if isinstance(other, int):
            return Poly({m: c * other for m, c in self.terms.items() if c * other})
        if not isinstance(other, Poly):
            if other == 0:
                return Poly({})
            return NotImplemented
        if len(self.terms) == 1 and len(other.terms) == 1:  # the common case: a symbol times a symbol
            ((m1, c1),), ((m2, c2),) = self.terms.items(), other.terms.items()
            if len(m1) == len(m2) == 1:
                return Poly({(m1 + m2) if m1[0] <= m2[0] else (m2 + m1): c1 * c2})
            return Poly({tuple(sorted(m1 + m2)): c1 * c2})
        product: dict[Monomial, int] = {}
        for m1, c1 in self.terms.items():
            for m2, c2 in other.terms.items():
                m = tuple(sorted(m1 + m2))
                product[m] = product.get(m, 0) + c1 * c2
        return Poly({m: c for m, c in product.items() if c})

    __rmul__ = __mul__

    def __repr__(self) -> str:
        return f"Poly({self.terms!r})"


def _canonical_order(symbols: set[sp.Symbol]) -> list[sp.Symbol]:
    """The symbols in ``Basic.compare``'s order, which for plain Symbols of equal assumptions is their names'."""
    # Basic.compare ranks Symbols by their hashable content, (name, *sorted assumptions); with the assumptions
    # all equal, that is Python's order of the names, 20x faster than comparing through SymPy.
    assumptions = {tuple(sorted(s.assumptions0.items())) for s in symbols if type(s) is sp.Symbol}
    if len(assumptions) <= 1 and all(type(s) is sp.Symbol for s in symbols):
        return sorted(symbols, key=lambda s: s.name)
    return sorted(symbols, key=cmp_to_key(sp.Basic.compare))


class SymbolTable:
    """Numbered symbols: SymPy expressions <-> ``Poly``, and SymPy's canonical sums of products built directly.

    Ids follow SymPy's canonical order of the symbols (``Basic.compare``), so sorting monomials by id sorts
    their factors as ``Mul`` does, and sorting products of two symbols by their ids orders them as ``Add``
    does: the trees built here are the ones ``sp.Add(*(a * b ...))`` builds, without its sorting by comparison.
    """

    def __init__(self, symbols: Iterable[sp.Symbol]) -> None:
        ordered = _canonical_order(set(symbols))
        self.symbols: tuple[sp.Symbol, ...] = tuple(ordered)
        self.ids: dict[sp.Symbol, int] = {s: i for i, s in enumerate(ordered)}
        # The same ids by object identity: the layer's own symbols are looked up without SymPy's ``__hash__``
        # (a Python method); an equal symbol that is another object falls back to ``ids``.
        self._ids_by_object: dict[int, int] = {id(s): i for i, s in enumerate(ordered)}
        # Products that occur again (a tap shared by two sums) are built once.
        self._products: dict[tuple[int, int], sp.Expr] = {}

    def id_of(self, symbol: sp.Basic) -> int:
        """The symbol's id; KeyError for an expression that is not a symbol of the table."""
        found = self._ids_by_object.get(id(symbol))
        return self.ids[symbol] if found is None else found

    def poly(self, symbol: sp.Symbol) -> Poly:
        return Poly.symbol(self.id_of(symbol))

    def product(self, a: sp.Symbol, b: sp.Symbol) -> sp.Expr:
        """a·b as SymPy's ``Mul`` (factors in canonical order), for two different symbols of the table."""
        i, j = self.ids[a], self.ids[b]
        key = (i, j) if i < j else (j, i)
        found = self._products.get(key)
        if found is None:
            found = sp.Mul._from_args((self.symbols[key[0]], self.symbols[key[1]]), True)
            self._products[key] = found
        return found

    def sum_of_products(self, pairs: Sequence[tuple[sp.Symbol, sp.Symbol]], extra: sp.Symbol | None = None) -> sp.Expr:
        """Σ a·b (+ extra) for distinct products of two different symbols, as ``sp.Add`` would build it."""
        by_object = self._ids_by_object
        try:
            numbered = [(by_object[id(a)], by_object[id(b)]) for a, b in pairs]
        except KeyError:  # equal symbols that are other objects
            numbered = [(self.id_of(a), self.id_of(b)) for a, b in pairs]
        keys = [(i, j) if i < j else (j, i) for i, j in numbered]
        keys.sort()
        if len(set(keys)) != len(keys):  # a repeated product needs a coefficient: SymPy collects it
            return sp.Add(*(a * b for a, b in pairs), *([extra] if extra is not None else []))
        # ``product`` inlined: this loop builds every product of a layer, and the calls were a third of its time.
        cache, symbols, build = self._products, self.symbols, sp.Mul._from_args
        args: list[sp.Expr] = []
        for key in keys:
            found = cache.get(key)
            if found is None:
                found = cache[key] = build((symbols[key[0]], symbols[key[1]]), True)
            args.append(found)
        if extra is not None:
            # Every product is a Mul and ``extra`` a Symbol, so the class order alone places it.
            args.insert(0 if not args or sp.Basic.compare(extra, args[0]) < 0 else len(args), extra)
        if not args:
            return sp.S.Zero
        return args[0] if len(args) == 1 else sp.Add._from_args(args, True)

    def encode(self, expr: sp.Expr) -> Poly:
        """A polynomial SymPy expression in the table's symbols as a ``Poly`` (exact; expands nested products)."""
        expr = sp.sympify(expr)
        terms: dict[Monomial, int] = {}
        by_object, Mul = self._ids_by_object, sp.Mul
        for term in sp.Add.make_args(expr):
            args = term.args
            if type(term) is Mul and len(args) == 2:  # the common case, a product of two symbols, read directly
                i, j = by_object.get(id(args[0]), -1), by_object.get(id(args[1]), -1)
                if i >= 0 and j >= 0:
                    key = (i, j) if i <= j else (j, i)
                    terms[key] = terms.get(key, 0) + 1
                    continue
            if term.is_Mul and any(f.is_Add for f in term.args):
                return self._encode_expanded(expr)
            coefficient, monomial = self._monomial(term)
            terms[monomial] = terms.get(monomial, 0) + coefficient
        return Poly({m: c for m, c in terms.items() if c})

    def _encode_expanded(self, expr: sp.Expr) -> Poly:
        monomials = (self._monomial(t) for t in sp.Add.make_args(sp.expand(expr)))
        return Poly.sum(Poly({m: c}) for c, m in monomials)

    def _monomial(self, term: sp.Expr) -> tuple[int, Monomial]:
        if term.is_Symbol:
            return 1, (self.ids[term],)
        coefficient, rest = term.as_coeff_Mul()
        if not coefficient.is_Integer:
            raise ValueError(f"{term} has a non-integer coefficient: not an entry of a convolution layer")
        ids: list[int] = []
        for factor in sp.Mul.make_args(rest):
            if factor.is_Pow and factor.exp.is_Integer and factor.exp > 0 and factor.base in self.ids:
                ids += [self.ids[factor.base]] * int(factor.exp)
            elif factor in self.ids:
                ids.append(self.ids[factor])
            elif factor != 1:
                raise ValueError(f"{factor} is not a symbol of the layer")
        return int(coefficient), tuple(sorted(ids))

    def decode(self, poly: Poly) -> sp.Expr:
        """A ``Poly`` back as a SymPy expression (for counterexamples: only entries that are printed)."""
        return sp.Add(*(c * sp.Mul(*(self.symbols[i] for i in m)) for m, c in poly.terms.items()))

    def monomial_expr(self, monomial: Monomial) -> sp.Expr:
        return sp.Mul(*(self.symbols[i] for i in monomial))

