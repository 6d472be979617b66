"""The two matrix products of a chunk, compiled, and the scratch they run in.

Chunks are transposed: features FT (m, b) and log joint / responsibilities JT (K, b), one column
per point, so that loops over points vectorise. Both products work in blocks of 4 components x
4 features, written for the compiler, and beat OpenBLAS's dgemm (its AVX2 kernel, on this
AVX-512 machine) at every shape measured, from (m, K) = (3, 2) to (2145, 16):
- The log joint is a sum over features: a block's 16 coefficients stay in registers while the
  loop over points updates 4 rows of JT (``contracting``: multiply-adds fused). 1.1-2.6x
  dgemm's speed; at (561, 16), 78 (unaligned) to 120 GFLOP/s (aligned scratch) on one core.
- The statistics are sums over points: 16 running sums in registers, 8 loads per 16
  multiply-adds, split into vector lanes (``reassociating``). 2-4x dgemm's speed.
Each sum's order is fixed by the shapes and the compiled code, never by the threads.
"""

from __future__ import annotations

import numpy as np

from workbench.em.specialise import contracting, kernel, reassociating

BLOCK = 4  # components x features per block of both products
ALIGNMENT = 64  # bytes: a cache line, one AVX-512 vector
LINE = ALIGNMENT // 8  # float64 values per cache line


def aligned_zeros(shape: tuple[int, ...]) -> np.ndarray:
    """Zeros of ``shape``, C-contiguous, starting on a cache line: chunk scratch, so that a chunk
    of b points (b from :func:`whole_lines`) has every row on cache lines of its own. Rows
    straddling cache lines measured 1.75x slower in the log joint at (m, K, b) = (561, 16, 232),
    and 1.3x in the statistics."""
    size = int(np.prod(shape))
    raw = np.zeros(size + LINE)
    start = (-raw.ctypes.data % ALIGNMENT) // 8
    return raw[start : start + size].reshape(shape)


def whole_lines(points: int) -> int:
    """``points`` rounded down to whole cache lines of float64 (a chunk's size, >= LINE)."""
    return points - points % LINE


@contracting
def log_joint_product(natural, FT, JT) -> None:
    """JT (K, b) = natural (K, m) @ FT (m, b). Blocks of 4 components x 4 features: their 16
    coefficients stay in registers while a loop over the points loads 4 feature rows and
    updates 4 log-joint rows (16 multiply-adds per point); then the components and features
    left over. One function with no calls inside: called once per block, the same loop
    measured 1.2-2.4x slower, depending on where the compiler happened to place the code."""
    K, m = natural.shape
    b = FT.shape[1]
    K4 = K - K % BLOCK
    m4 = m - m % BLOCK
    JT[:] = 0.0
    for k in range(0, K4, BLOCK):
        n0, n1, n2, n3 = natural[k], natural[k + 1], natural[k + 2], natural[k + 3]
        for p in range(0, m4, BLOCK):
            a00, a01, a02, a03 = n0[p], n0[p + 1], n0[p + 2], n0[p + 3]
            a10, a11, a12, a13 = n1[p], n1[p + 1], n1[p + 2], n1[p + 3]
            a20, a21, a22, a23 = n2[p], n2[p + 1], n2[p + 2], n2[p + 3]
            a30, a31, a32, a33 = n3[p], n3[p + 1], n3[p + 2], n3[p + 3]
            for i in range(b):
                f0, f1, f2, f3 = FT[p, i], FT[p + 1, i], FT[p + 2, i], FT[p + 3, i]
                JT[k, i] += a00 * f0 + a01 * f1 + a02 * f2 + a03 * f3
                JT[k + 1, i] += a10 * f0 + a11 * f1 + a12 * f2 + a13 * f3
                JT[k + 2, i] += a20 * f0 + a21 * f1 + a22 * f2 + a23 * f3
                JT[k + 3, i] += a30 * f0 + a31 * f1 + a32 * f2 + a33 * f3
        for p in range(m4, m):
            a0, a1, a2, a3 = n0[p], n1[p], n2[p], n3[p]
            for i in range(b):
                f = FT[p, i]
                JT[k, i] += a0 * f
                JT[k + 1, i] += a1 * f
                JT[k + 2, i] += a2 * f
                JT[k + 3, i] += a3 * f
    for k in range(K4, K):
        n0 = natural[k]
        for p in range(0, m4, BLOCK):
            a0, a1, a2, a3 = n0[p], n0[p + 1], n0[p + 2], n0[p + 3]
            for i in range(b):
                JT[k, i] += (
                    a0 * FT[p, i] + a1 * FT[p + 1, i] + a2 * FT[p + 2, i] + a3 * FT[p + 3, i]
                )
        for p in range(m4, m):
            a0 = n0[p]
            for i in range(b):
                JT[k, i] += a0 * FT[p, i]


@reassociating
def _block_sums(JT, FT, T, k, p) -> None:
    """T[k:k+4, p:p+4] += JT[k:k+4] @ FT[p:p+4]^T."""
    t00 = t01 = t02 = t03 = t10 = t11 = t12 = t13 = 0.0
    t20 = t21 = t22 = t23 = t30 = t31 = t32 = t33 = 0.0
    for i in range(JT.shape[1]):
        r0, r1, r2, r3 = JT[k, i], JT[k + 1, i], JT[k + 2, i], JT[k + 3, i]
        f0, f1, f2, f3 = FT[p, i], FT[p + 1, i], FT[p + 2, i], FT[p + 3, i]
        t00 += r0 * f0
        t01 += r0 * f1
        t02 += r0 * f2
        t03 += r0 * f3
        t10 += r1 * f0
        t11 += r1 * f1
        t12 += r1 * f2
        t13 += r1 * f3
        t20 += r2 * f0
        t21 += r2 * f1
        t22 += r2 * f2
        t23 += r2 * f3
        t30 += r3 * f0
        t31 += r3 * f1
        t32 += r3 * f2
        t33 += r3 * f3
    T[k, p] += t00
    T[k, p + 1] += t01
    T[k, p + 2] += t02
    T[k, p + 3] += t03
    T[k + 1, p] += t10
    T[k + 1, p + 1] += t11
    T[k + 1, p + 2] += t12
    T[k + 1, p + 3] += t13
    T[k + 2, p] += t20
    T[k + 2, p + 1] += t21
    T[k + 2, p + 2] += t22
    T[k + 2, p + 3] += t23
    T[k + 3, p] += t30
    T[k + 3, p + 1] += t31
    T[k + 3, p + 2] += t32
    T[k + 3, p + 3] += t33


@reassociating
def _pair_sum(JT, FT, k, p) -> float:
    """sum_i JT[k, i] FT[p, i]."""
    total = 0.0
    for i in range(JT.shape[1]):
        total += JT[k, i] * FT[p, i]
    return total


@kernel
def add_statistics(JT, FT, T) -> None:
    """T (K, m) += JT (K, b) @ FT (m, b)^T: responsibility-weighted sums of the features; 4 x 4
    blocks, then the components and features left over pair by pair."""
    K = JT.shape[0]
    m = FT.shape[0]
    K4 = K - K % BLOCK
    m4 = m - m % BLOCK
    for k in range(0, K4, BLOCK):
        for p in range(0, m4, BLOCK):
            _block_sums(JT, FT, T, k, p)
    for k in range(K):
        for p in range(m4 if k < K4 else 0, m):
            T[k, p] += _pair_sum(JT, FT, k, p)
