"""Responsibilities from log joint densities, compiled: exp that vectorises, few logs.

exp is fdlibm's algorithm (e_exp.c: reduction v = k ln2 + r, rational approximation of exp(r))
written out so that the compiler vectorises it, within 1 ulp like libm's and numpy's. Each point's
column is normalised with the largest term set aside (as scipy's logsumexp); the log-likelihood
takes one log per LOG_GROUP points (of the product of their normalisers, each in [1, K]).
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from workbench.em.specialise import kernel

LOG_GROUP = 16  # points per log: the product of 16 normalisers <= K^16 stays finite for K < 1e19
_LN2_HI, _LN2_LO, _INV_LN2 = (
    6.93147180369123816490e-01,
    1.90821492927058770002e-10,
    1.4426950408889634,
)
_P1, _P2, _P3 = 1.66666666666666019037e-01, -2.77777777770155933842e-03, 6.61375632143793436117e-05
_P4, _P5 = -1.65339022054652515390e-06, 4.13813679705723846039e-08


@intrinsic
def _f64_from_bits(typingctx, bits):
    """The float64 whose IEEE-754 bit pattern is the int64 ``bits`` (a free bitcast)."""
    if bits != types.int64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


@kernel
def exp_nonpositive(v: float) -> float:
    """exp(v) for v <= 0 (or nan), within 1 ulp; v below -800 (where exp underflows to 0) is
    clamped there; 2^k is built from its bits as 2^k1 2^(k - k1), both normal numbers."""
    if v < -800.0:
        v = -800.0
    k = math.floor(v * _INV_LN2 + 0.5)
    hi = v - k * _LN2_HI
    lo = k * _LN2_LO
    r = hi - lo
    t = r * r
    c = r - t * (_P1 + t * (_P2 + t * (_P3 + t * (_P4 + t * _P5))))
    y = 1.0 - ((lo - (r * c) / (2.0 - c)) - hi)
    if not k == k:  # v is nan: so is y; keep the integer conversions defined
        k = 0.0
    k1 = max(k, -1020.0)
    scale1 = _f64_from_bits((np.int64(k1) + 1023) << 52)
    return (y * scale1) * _f64_from_bits((np.int64(k - k1) + 1023) << 52)


@kernel
def normalise_columns(JT, top, norm) -> float:
    """Columns of the log joint JT (K, b) (one per point) into responsibilities, in place;
    returns sum_i log sum_k exp JT_ki. top, norm: scratch (at least b,)."""
    K, b = JT.shape
    for i in range(b):
        top[i] = JT[0, i]
    for k in range(1, K):
        for i in range(b):
            top[i] = max(top[i], JT[k, i])
    for i in range(b):
        norm[i] = 0.0
    for k in range(K):
        for i in range(b):  # vectorises
            e = exp_nonpositive(JT[k, i] - top[i])
            JT[k, i] = e
            norm[i] += e
    for i in range(b):
        top[i] += 0.0  # keeps the order of the sums fixed below
    total = 0.0
    for i in range(b):
        total += top[i]
    for lo in range(0, b, LOG_GROUP):
        product = 1.0
        for i in range(lo, min(b, lo + LOG_GROUP)):
            product *= norm[i]
        total += math.log(product)
    for i in range(b):
        norm[i] = 1.0 / norm[i]
    for k in range(K):
        for i in range(b):
            JT[k, i] *= norm[i]
    return total
