"""The two matrix products of a chunk, compiled: BLAS for large shapes, loops for small ones.

Chunks are transposed: features FT (m, b) and log joint / responsibilities JT (K, b), one column
per point, so that loops over points vectorise. Below SMALL_WORK multiply-adds per point
(m features x K components) a BLAS call costs more than it computes, so plain loops do the
work; the choice depends on the shapes only, never on the threads, and each path sums in a
fixed order.
"""

from __future__ import annotations

import numpy as np

from workbench.em.specialise import kernel

SMALL_WORK = 48


@kernel
def log_joint_product(natural, FT, JT) -> None:
    """JT (K, b) = natural (K, m) @ FT (m, b)."""
    K, m = natural.shape
    b = FT.shape[1]
    if m * K > SMALL_WORK:
        np.dot(natural, FT, JT)
        return
    for k in range(K):
        for i in range(b):
            JT[k, i] = natural[k, 0] * FT[0, i]
        for p in range(1, m):
            c = natural[k, p]
            for i in range(b):
                JT[k, i] += c * FT[p, i]


@kernel
def add_statistics(JT, FT, T) -> None:
    """T (K, m) += JT (K, b) @ FT (m, b)^T: responsibility-weighted sums of the features."""
    K, b = JT.shape
    m = FT.shape[0]
    if m * K > SMALL_WORK:
        T += np.dot(JT, FT.T)
        return
    for k in range(K):
        for p in range(m):
            t = 0.0
            for i in range(b):
                t += JT[k, i] * FT[p, i]
            T[k, p] += t
