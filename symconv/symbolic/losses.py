"""Losses: a network's output and a target -> the scalar loss E and its closed-form gradient dE/dy, symbolic and NumPy.

``MSELoss`` is the textbook E = 1/2 sum (t - y)^2 with gradient y - t; ``CrossEntropyLoss`` is PyTorch's softmax
cross-entropy on logits and class labels, averaged over the batch, with gradient (softmax(z) - onehot(t)) / N.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
import sympy as sp

from . import layer_reference as ref

__all__ = ["Loss", "MSELoss", "CrossEntropyLoss"]

Shape = tuple[int, ...]


class Loss(ABC):
    """The last layer of a ``Network``: it maps the output y and a target to a scalar."""

    @abstractmethod
    def describe(self) -> str:
        """A short name, e.g. ``MSELoss()``."""

    @abstractmethod
    def target_shape(self, input_shape: Shape) -> Shape:
        """The target's shape for an output of ``input_shape``, or ValueError."""

    @abstractmethod
    def forward(self, y: np.ndarray, target: np.ndarray) -> sp.Expr:
        """E on SymPy entries."""

    @abstractmethod
    def backward(self, y: np.ndarray, target: np.ndarray) -> np.ndarray:
        """The closed form of dE/dy."""

    @abstractmethod
    def reference_forward(self, y: np.ndarray, target: np.ndarray) -> np.floating:
        """E in float NumPy."""

    @abstractmethod
    def reference_backward(self, y: np.ndarray, target: np.ndarray) -> np.ndarray:
        """dE/dy in float NumPy."""


@dataclass(frozen=True)
class MSELoss(Loss):
    """E = 1/2 * sum over all samples and outputs of (t - y)^2; dE/dy = y - t.

    The 1/2 makes the gradient y - t (the textbook convention). It is 0.5 * ``torch.nn.MSELoss(reduction="sum")``
    and N*M/2 times PyTorch's default ``MSELoss()`` (the mean over the N*M entries).

    >>> y, t = np.array([[sp.Symbol("y")]]), np.array([[sp.Symbol("t")]])
    >>> MSELoss().forward(y, t), MSELoss().backward(y, t)
    ((t - y)**2/2, array([[-t + y]], dtype=object))
    """

    def describe(self) -> str:
        return "MSELoss()"

    def target_shape(self, input_shape: Shape) -> Shape:
        return tuple(input_shape)

    def forward(self, y: np.ndarray, target: np.ndarray) -> sp.Expr:
        return sp.Add(*((t - v) ** 2 for v, t in zip(y.flat, target.flat))) / 2

    def backward(self, y: np.ndarray, target: np.ndarray) -> np.ndarray:
        return y - target

    def reference_forward(self, y: np.ndarray, target: np.ndarray) -> np.floating:
        return ref.mse_loss(y, target)

    def reference_backward(self, y: np.ndarray, target: np.ndarray) -> np.ndarray:
        return ref.mse_loss_grad(y, target)


@dataclass(frozen=True)
class CrossEntropyLoss(Loss):
    """Softmax cross-entropy on logits z (N, M) and integer labels t (N,), averaged over the batch.

    E = 1/N * sum_n (log sum_k exp z_nk - z_n,t_n), ``torch.nn.CrossEntropyLoss()`` with its default mean
    reduction; dE/dz = (softmax(z) - onehot(t)) / N.

    >>> z = np.array([[sp.Symbol("a"), sp.Symbol("b")]])
    >>> CrossEntropyLoss().backward(z, np.array([1]))[0, 1]
    -1 + exp(b)/(exp(a) + exp(b))
    """

    def describe(self) -> str:
        return "CrossEntropyLoss()"

    def target_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 2:
            raise ValueError(
                f"CrossEntropyLoss() needs (N, classes) logits, got shape {input_shape}; put Flatten() before it"
            )
        return (input_shape[0],)

    @staticmethod
    def _labels(y: np.ndarray, target: np.ndarray) -> list[int]:
        labels = [int(t) for t in np.asarray(target).flat]
        if len(labels) != y.shape[0] or any(not 0 <= t < y.shape[1] for t in labels):
            raise ValueError(f"labels must be {y.shape[0]} integers in [0, {y.shape[1]}), got {target!r}")
        return labels

    def forward(self, y: np.ndarray, target: np.ndarray) -> sp.Expr:
        labels = self._labels(y, target)
        # log(sum exp) as SymPy builds it; the same exp(z) atoms appear in the closed-form gradient.
        return (
            sp.Add(*(sp.log(sp.Add(*(sp.exp(z) for z in y[n]))) - y[n, t] for n, t in enumerate(labels))) / y.shape[0]
        )

    def backward(self, y: np.ndarray, target: np.ndarray) -> np.ndarray:
        labels, N = self._labels(y, target), y.shape[0]
        grad = np.empty(y.shape, dtype=object)
        for n, t in enumerate(labels):
            total = sp.Add(*(sp.exp(z) for z in y[n]))
            for k in range(y.shape[1]):
                grad[n, k] = (sp.exp(y[n, k]) / total - (1 if k == t else 0)) / N
        return grad

    def reference_forward(self, y: np.ndarray, target: np.ndarray) -> np.floating:
        return ref.cross_entropy_loss(y, np.asarray(target))

    def reference_backward(self, y: np.ndarray, target: np.ndarray) -> np.ndarray:
        return ref.cross_entropy_loss_grad(y, np.asarray(target))
