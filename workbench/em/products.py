"""The two matrix products of a chunk, compiled: one BLAS call for large shapes, smaller pieces
for small ones.

Chunks are transposed: features FT (m, b) and log joint / responsibilities JT (K, b), one column
per point, so that loops over points vectorise. For few multiply-adds per point (m features x
K components) a matrix-product call costs more than it computes:
- the log joint, up to JOINT_LOOP_WORK, is a plain loop over points per coefficient
  (vectorised);
- the statistics, reductions over points, are one BLAS dot product per (component, feature)
  pair up to STATS_DOT_PAIRS pairs, or up to STATS_DOT_NARROW pairs when either dimension is at
  most NARROW (2-3x faster than the matrix product at the smallest shapes, 1.2-1.5x near the
  bounds). A compiled loop cannot match ddot: without reassociation its sum runs one add at a
  time.
Thresholds measured single-threaded on chunks of 500 to 2048 points (OpenBLAS, AVX2); the choice
depends on the shapes only, never on the threads, and each path sums in a fixed order.
"""

from __future__ import annotations

import numpy as np

from workbench.em.specialise import kernel

JOINT_LOOP_WORK = 80
STATS_DOT_PAIRS = 96
STATS_DOT_NARROW = 240
NARROW = 5


@kernel
def log_joint_product(natural, FT, JT) -> None:
    """JT (K, b) = natural (K, m) @ FT (m, b)."""
    K, m = natural.shape
    b = FT.shape[1]
    if m * K > JOINT_LOOP_WORK:
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
    K = JT.shape[0]
    m = FT.shape[0]
    if m * K <= STATS_DOT_PAIRS or (min(m, K) <= NARROW and m * K <= STATS_DOT_NARROW):
        for k in range(K):
            for p in range(m):
                T[k, p] += np.dot(JT[k], FT[p])  # BLAS ddot of two rows
        return
    S = np.dot(FT, JT.T)  # (m, K): OpenBLAS runs this orientation up to twice as fast
    for k in range(K):
        for p in range(m):
            T[k, p] += S[p, k]
