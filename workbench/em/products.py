"""The two matrix products of a chunk, compiled: BLAS for large shapes, loops for small ones.

Below SMALL_WORK multiply-adds per point (m features x K components) a BLAS call costs more
than it computes, so plain loops do the work; the choice depends on the shapes only, never on
the threads, and each path sums in a fixed order.
"""

from __future__ import annotations

import numpy as np

from workbench.em.specialise import kernel

SMALL_WORK = 48


@kernel
def log_joint_product(F, natural, J) -> None:
    """J (b, K) = F (b, m) @ natural (m, K)."""
    b, m = F.shape
    K = natural.shape[1]
    if m * K > SMALL_WORK:
        np.dot(F, natural, J)
        return
    for i in range(b):
        for k in range(K):
            t = 0.0
            for p in range(m):
                t += F[i, p] * natural[p, k]
            J[i, k] = t


@kernel
def add_statistics(J, F, T) -> None:
    """T (K, m) += J (b, K)^T @ F (b, m): responsibility-weighted sums of the features."""
    b, K = J.shape
    m = F.shape[1]
    if m * K > SMALL_WORK:
        T += np.dot(J.T, F)
        return
    for k in range(K):
        for p in range(m):
            t = 0.0
            for i in range(b):
                t += J[i, k] * F[i, p]
            T[k, p] += t
