"""Proofs for every size: symbolic n, k, s, p, d per axis (and channel counts) -> a ``GeneralProofReport``.

In: a ``GeneralSpec`` (which sizes are fixed). Out: the identities of ``prove``, each decided for all sizes the
assumptions allow. The stages, one module each: ``spec`` (symbols, assumptions) -> ``theorems`` (the derivation
side by ``sympy.diff``, the closed forms in ``notation``) -> ``sums`` (guarded sums) -> ``bijection`` (the map
between bound variables, and its ``obligation``s as data) -> ``z3_backend`` / ``isl_backend`` (the solvers) ->
``report`` (verdicts; ``counterexample`` rebuilds a refuted shape for the concrete prover) -> ``certificate``.
The layers (ReLU, pooling, dense, MSE) take the same stages from ``layer_spec`` (a ``GeneralLayer``: sizes,
assumptions, max pooling's choice of winners) and ``layer_theorems`` to ``layer_report``.
"""

from .counterexample import GeneralCounterexample, LayerShape, ProverDisagreement, SolverDisagreement
from .layer_report import check_general_layer, prove_general_layer
from .layer_spec import GeneralLayer
from .layer_theorems import LAYER_IDENTITIES
from .report import GeneralProof, GeneralProofReport, check_general, prove_general
from .spec import GeneralSpec
from .theorems import IDENTITY_NAMES

__all__ = ["prove_general", "check_general", "GeneralProof", "GeneralProofReport", "GeneralSpec",
           "GeneralCounterexample", "ProverDisagreement", "SolverDisagreement", "IDENTITY_NAMES",
           "prove_general_layer", "check_general_layer", "GeneralLayer", "LayerShape", "LAYER_IDENTITIES"]
