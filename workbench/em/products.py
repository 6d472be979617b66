"""The two matrix products of a chunk, compiled: BLAS for large shapes, loops for small ones.

Chunks are transposed: features FT (m, b) and log joint / responsibilities JT (K, b), one column
per point, so that loops over points vectorise. For few multiply-adds per point (m features x
K components) a BLAS call costs more than it computes, so plain loops do the work: up to
JOINT_LOOP_WORK for the log joint (a loop over points per coefficient, vectorised), up to
STATS_LOOP_WORK for the statistics (a reduction over points, which without reassociation runs
one add at a time unless split into interleaved partial sums; BLAS wins sooner). Thresholds
measured single-threaded on chunks of 1000 and 2048 points (OpenBLAS, AVX2); the choice depends
on the shapes only, never on the threads, and each path sums in a fixed order.
"""

from __future__ import annotations

import numpy as np

from workbench.em.specialise import kernel

JOINT_LOOP_WORK = 80
STATS_LOOP_WORK = 16
LANES = 8  # partial sums per reduction in the loops


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
    K, b = JT.shape
    m = FT.shape[0]
    if m * K > STATS_LOOP_WORK:
        S = np.dot(FT, JT.T)  # (m, K): OpenBLAS runs this orientation up to twice as fast
        for k in range(K):
            for p in range(m):
                T[k, p] += S[p, k]
        return
    full = b - b % LANES
    partial = np.empty(LANES)
    for k in range(K):
        for p in range(m):
            # LANES interleaved partial sums: independent multiply-adds the compiler can run
            # side by side (one running sum waits for each add), combined in a fixed order
            for lane in range(LANES):
                partial[lane] = 0.0
            for i0 in range(0, full, LANES):
                for lane in range(LANES):
                    partial[lane] += JT[k, i0 + lane] * FT[p, i0 + lane]
            t = 0.0
            for lane in range(LANES):
                t += partial[lane]
            for i in range(full, b):
                t += JT[k, i] * FT[p, i]
            T[k, p] += t
