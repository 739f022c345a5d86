"""Certificates: a ``GeneralProofReport`` -> a folder (``certificate.json`` and one solver file per run), and back.

The certificate holds the assumptions, each equation's normalised sides, the bijection between their bound
variables and its inverse, and every obligation with the solver's own text (SMT-LIB for z3, isl sets for isl),
the solver's name, version and answer. ``recheck`` refuses a certificate unless (1) symconv, from the recorded
options, derives the very same sides, bijections and obligation texts, (2) every recorded text, re-run by its
solver, gives the recorded answer, and (3) the recorded verdicts follow from those answers. The ``.smt2`` files
can be given to any SMT-LIB solver (``unsat`` = the obligation holds).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from ...version import __version__
from .bijection import Matching
from .isl_backend import isl_text, rerun_isl, script
from .layer_report import layer_plan
from .layer_spec import GeneralLayer
from .layer_theorems import layer_identities
from .obligation import Obligation
from .report import Domain, GeneralProof, GeneralProofReport, Sides, plan
from .spec import GeneralSpec
from .theorems import Equation, Identity, identities
from .z3_backend import rerun_z3, smtlib

__all__ = ["FORMAT", "write_certificate", "recheck", "Recheck"]

FORMAT = "symconv-general-certificate/1"
FILE = "certificate.json"


def _strs(items) -> list[str]:
    return [str(x) for x in items]


def _map(pairs) -> dict[str, str]:
    return {str(k): str(v) for k, v in pairs}


def _matching(m: Matching) -> dict[str, Any]:
    return {"signature": list(m.signature), "derivation": None if m.left is None else str(m.left),
            "closed_form": None if m.right is None else str(m.right), "phi": _map(m.forward), "psi": _map(m.backward),
            "phi_requires": _strs(m.forward_residue), "psi_requires": _strs(m.backward_residue), "problem": m.problem}


def _sides(s: Sides) -> dict[str, Any]:
    return {"tensor": s.tensor, "entry": _strs(s.entry), "ranges": _strs(s.ranges),
            "derivation": _strs(s.derived), "closed_form": _strs(s.closed),
            "derivation_extent": _strs(s.derived_extent), "closed_form_extent": _strs(s.closed_extent),
            "floors": [f"{z} = floor(({x}) / ({y}))" for z, x, y in s.floors],
            "bijections": [_matching(m) for m in s.matchings]}


def _obligation(o: Obligation) -> dict[str, Any]:
    out = {"name": o.name, "statement": o.statement, "parameters": _strs(o.parameters),
           "variables": _strs(o.variables), "assumptions": _strs(o.assumptions), "hypotheses": _strs(o.hypotheses),
           "goals": _strs(o.goals)}
    return {**out, "facts": _strs(o.facts)} if o.facts else out


def _theorems(options: dict[str, Any]) -> tuple[Domain, dict[str, Identity], Callable[[Sequence[Equation]], Any]]:
    """The domain, identities and planner a certificate's options name: a layer's (``layer`` given) or a
    convolution's."""
    if "layer" in options:
        layer = GeneralLayer.of(**options)
        return layer, {i.name: i for i in layer_identities(layer)}, lambda eqs: layer_plan(layer, eqs)
    spec = GeneralSpec.of(**options)
    return spec, {i.name: i for i in identities(spec)}, lambda eqs: plan(spec, eqs)


def _texts(o: Obligation, solvers) -> dict[str, str]:
    out = {}
    if "z3" in solvers:
        out["z3"] = smtlib(o)
    if "isl" in solvers and o.is_linear:
        out["isl"] = script(*isl_text(o))
    return out


def _file_name(index: int, name: str, solver: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")
    return f"obligations/{index:03d}-{stem}.{'smt2' if solver == 'z3' else 'isl'}"


def _proof(p: GeneralProof, start: int) -> dict[str, Any]:
    obligations = []
    for i, d in enumerate(p.decisions):
        entry = _obligation(d.obligation)
        entry["runs"] = [{"solver": r.solver, "version": r.version, "answer": r.answer, "proved": r.proved,
                          "file": _file_name(start + i, d.obligation.name, r.solver), "text": r.text} for r in d.runs]
        obligations.append(entry)
    return {"name": p.name, "statement": p.statement, "verdict": p.verdict, "holds": p.holds,
            "problems": list(p.problems), "equations": [_sides(s) for s in p.sides], "obligations": obligations,
            "counterexample": None if p.counterexample is None else str(p.counterexample)}


def certificate(report: GeneralProofReport) -> dict[str, Any]:
    """The certificate of a report, as JSON-ready data."""
    proofs, start = [], 0
    for p in report.proofs:
        proofs.append(_proof(p, start))
        start += len(p.decisions)
    return {"format": FORMAT, "symconv": __version__, "options": dict(report.options),
            "identities_chosen": [p.name for p in report.proofs], "solvers": list(report.solvers),
            "timeout": report.timeout, "spec": report.spec.describe(), "assumptions": _strs(report.assumptions),
            "holds": report.holds, "identities": proofs}


def write_certificate(report: GeneralProofReport, folder: str | Path) -> Path:
    """Write ``certificate.json`` and ``obligations/NNN-name.smt2`` / ``.isl`` into ``folder``."""
    root = Path(folder)
    (root / "obligations").mkdir(parents=True, exist_ok=True)
    data = certificate(report)
    for p in data["identities"]:
        for o in p["obligations"]:
            for run in o["runs"]:
                (root / run["file"]).write_text(run["text"], encoding="utf-8")
    path = root / FILE
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


@dataclass(frozen=True)
class Recheck:
    """The outcome of re-checking a certificate: ``genuine`` iff nothing was refused; ``holds`` iff, on top of
    that, it proves every identity it lists."""

    folder: str
    problems: tuple[str, ...]
    reruns: int
    claims_hold: bool

    @property
    def genuine(self) -> bool:
        return not self.problems

    @property
    def holds(self) -> bool:
        return self.genuine and self.claims_hold

    def __str__(self) -> str:
        if self.problems:
            return f"certificate {self.folder} REFUSED:\n" + "\n".join(f"  {p}" for p in self.problems)
        verdict = "every identity proved" if self.claims_hold else "genuine, but not every identity is proved"
        return f"certificate {self.folder}: {self.reruns} solver runs re-checked, {verdict}"


def _differences(recorded: Any, derived: Any, path: str) -> Iterator[str]:
    if isinstance(derived, dict) and isinstance(recorded, dict):
        for key in derived:
            if key not in recorded:
                yield f"{path}.{key}: missing"
            else:
                yield from _differences(recorded[key], derived[key], f"{path}.{key}")
        for key in recorded.keys() - derived.keys():
            yield f"{path}.{key}: not part of the theorem"
    elif isinstance(derived, list) and isinstance(recorded, list):
        if len(derived) != len(recorded):
            yield f"{path}: {len(recorded)} items recorded, {len(derived)} derived"
        for i, (r, d) in enumerate(zip(recorded, derived)):
            yield from _differences(r, d, f"{path}[{i}]")
    elif recorded != derived:
        yield f"{path}: recorded {str(recorded)[:80]!r}, derived {str(derived)[:80]!r}"


def recheck(folder: str | Path, timeout: float | None = None) -> Recheck:
    """Re-derive and re-run a certificate written by ``write_certificate``; see the module docstring."""
    root = Path(folder)
    problems: list[str] = []
    try:
        data = json.loads((root / FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        return Recheck(str(root), (f"cannot read {root / FILE}: {error}",), 0, False)
    if data.get("format") != FORMAT:
        return Recheck(str(root), (f"not a {FORMAT} certificate",), 0, False)
    try:
        _, chosen, planner = _theorems(dict(data["options"]))
        names = list(data["identities_chosen"])
        solvers = list(data["solvers"])
        recorded_ids = data["identities"]
    except (KeyError, TypeError, ValueError) as error:
        return Recheck(str(root), (f"malformed certificate: {error}",), 0, False)
    if [p.get("name") for p in recorded_ids] != names or not set(names) <= set(chosen):
        return Recheck(str(root), ("the identities recorded are not those chosen",), 0, False)

    # (1) The theorem itself: symconv derives the same sides, bijections, obligations and solver texts.
    reruns, start = 0, 0
    for p in recorded_ids:
        identity = chosen[p["name"]]
        sides, obls, plan_problems = planner(identity.equations)
        derived = {"statement": identity.statement, "equations": [_sides(s) for s in sides],
                   "obligations": [_obligation(o) for o in obls], "problems": list(plan_problems)}
        recorded = {"statement": p.get("statement"), "equations": p.get("equations"),
                    "obligations": [{k: v for k, v in o.items() if k != "runs"} for o in p.get("obligations", [])],
                    "problems": [x for x in p.get("problems", []) if x in plan_problems] if plan_problems else p.get("problems")}
        problems += list(_differences(recorded, derived, p["name"]))
        # (2) Each recorded solver text is the one symconv prints, in its file, and gives the recorded answer.
        proved_all = not plan_problems
        for i, (o, rec) in enumerate(zip(obls, p.get("obligations", []))):
            texts = _texts(o, solvers)
            runs = rec.get("runs", [])
            if sorted(r.get("solver") for r in runs) != sorted(texts):
                problems.append(f"{o.name}: runs by {[r.get('solver') for r in runs]}, expected {sorted(texts)}")
                proved_all = False
                continue
            for run in runs:
                solver, text = run["solver"], run.get("text", "")
                if text != texts[solver]:
                    problems.append(f"{o.name}: the {solver} text is not the obligation's")
                file = root / _file_name(start + i, o.name, solver)
                if not file.is_file() or file.read_text(encoding="utf-8") != text:
                    problems.append(f"{o.name}: {file.relative_to(root)} differs from the certificate")
                answer = rerun_z3(text, timeout or data.get("timeout", 10.0)) if solver == "z3" else rerun_isl(text)
                reruns += 1
                if answer != run.get("answer", "").split(" ")[0]:
                    problems.append(f"{o.name}: {solver} answers {answer}, the certificate says {run.get('answer')}")
                proved = answer in ("unsat", "subset")
                if bool(run.get("proved")) != proved:
                    problems.append(f"{o.name}: recorded as {'proved' if run.get('proved') else 'not proved'} by "
                                    f"{solver}, whose answer {answer} says otherwise")
                proved_all = proved_all and proved
        start += len(obls)
        # (3) The verdicts follow from the answers.
        if bool(p.get("holds")) != proved_all:
            problems.append(f"{p['name']}: recorded {'proved' if p.get('holds') else 'not proved'}, the runs say "
                            f"{'proved' if proved_all else 'not proved'}")
    claims = bool(data.get("holds")) and all(p.get("holds") for p in recorded_ids)
    if bool(data.get("holds")) != all(p.get("holds") for p in recorded_ids):
        problems.append("the certificate's verdict is not that of its identities")
    return Recheck(str(root), tuple(dict.fromkeys(problems)), reruns, claims)
