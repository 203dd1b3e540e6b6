"""Streaming moments: per-chunk central moments and their exact merge (Pebay 2008).

A moment record for P coordinates is an array (P, 4) of [mean, M2, M3, M4], with M_k the
sum of k-th powers of deviations from the mean, plus its count.  Only finite estimates
(every coordinate finite) enter the moments; the others are counted apart.
"""

import numpy as np

from gradvar.kernels.jit import kernel


def chunk_moments(buf, mom, cnt):
    """:func:`chunk_moments_rows` for a (P, m) ``buf``, one column per estimate (allocates
    its own scratch: for tests and callers outside the engine)."""
    chunk_moments_rows(buf.T, mom, cnt, np.empty((4, buf.shape[0])))


@kernel(inline="never")  # out of line: p dynamic, the loops over j vectorised (any P)
def chunk_moments_rows(buf, mom, cnt, acc):
    """:func:`moments_rows` with p = acc.shape[1] (dynamic cells, tests)."""
    moments_rows(buf, mom, cnt, acc, acc.shape[1])


@kernel(inline="always")
def moments_rows(buf, mom, cnt, acc, p):
    """Two-pass central moments of the finite rows of ``buf`` (m, P) into ``mom`` (P, 4);
    cnt = [finite estimates, non-finite estimates]; ``acc`` is (4, >= p) scratch.

    An estimate (a row) is finite when every coordinate is.  The first pass sums x - x_0
    (x_0 the first finite row), so that a constant column (reparam on linear, exact) gets
    its value as the mean and M2 = 0 exactly, which a plain sum / m misses by an ulp.  Both
    passes keep one accumulator per coordinate (and moment) and visit the rows in order:
    every sum runs in row order, as a loop over one coordinate would, while the
    independent additions of the coordinates overlap.  The generated kernels inline it with
    ``acc`` on their own stack (no aliasing with ``buf``): with a literal p (small P) the
    loops over j unroll into independent scalar chains kept in registers, with a dynamic p
    they vectorise (:func:`gradvar.kernels.codegen.render`).  The order of every sum is the
    same either way: the same bits.
    """
    m = buf.shape[0]
    for j in range(p):
        acc[0, j] = 0.0
        acc[1, j] = buf[0, j] if m > 0 else 0.0
    for i in range(m):
        for j in range(p):
            acc[0, j] += buf[i, j] - acc[1, j]
    total = 0.0
    for j in range(p):
        mom[j, 0] = acc[0, j]
        mom[j, 1] = acc[1, j]
        total += acc[0, j]
    good = m
    if not np.isfinite(total):  # some estimate is non-finite (or a sum overflowed)
        good = 0
        first = -1
        for i in range(m):
            ok = True
            for j in range(p):
                ok = ok and np.isfinite(buf[i, j])
            if ok:
                good += 1
                if first < 0:
                    first = i
            else:
                for j in range(p):
                    buf[i, j] = np.nan
        for j in range(p):
            mom[j, 0] = 0.0
            mom[j, 1] = buf[first, j] if first >= 0 else 0.0
        for i in range(m):
            if not np.isnan(buf[i, 0]):
                for j in range(p):
                    mom[j, 0] += buf[i, j] - mom[j, 1]
    cnt[0] = good
    cnt[1] = m - good
    for j in range(p):
        mom[j, 0] = mom[j, 1] + mom[j, 0] / good if good > 0 else 0.0
        acc[0, j] = mom[j, 0]
        acc[1, j] = 0.0
        acc[2, j] = 0.0
        acc[3, j] = 0.0
    for i in range(m):
        if good == m or not np.isnan(buf[i, 0]):
            for j in range(p):
                d = buf[i, j] - acc[0, j]
                d2 = d * d
                acc[1, j] += d2
                acc[2, j] += d2 * d
                acc[3, j] += d2 * d2
    for j in range(p):
        mom[j, 1] = acc[1, j]
        mom[j, 2] = acc[2, j]
        mom[j, 3] = acc[3, j]


@kernel(cache=True, inline="never")  # self-contained, called from Python: safe to cache on its own
def merge_into(na, a, nb, b):
    """Merge moments (nb, b) into (na, a) in place; return the new count.

    n = na + nb, delta = mean_b - mean_a:
    M2 = M2a + M2b + delta^2 na nb / n
    M3 = M3a + M3b + delta^3 na nb (na - nb) / n^2 + 3 delta (na M2b - nb M2a) / n
    M4 = M4a + M4b + delta^4 na nb (na^2 - na nb + nb^2) / n^3
         + 6 delta^2 (na^2 M2b + nb^2 M2a) / n^2 + 4 delta (na M3b - nb M3a) / n
    """
    if nb == 0:
        return na
    if na == 0:
        for j in range(a.shape[0]):
            for q in range(4):
                a[j, q] = b[j, q]
        return nb
    n = na + nb
    fa, fb = float(na), float(nb)
    fn = float(n)
    for j in range(a.shape[0]):
        d = b[j, 0] - a[j, 0]
        # products, not d ** 3: Numba's integer powers and Python's pow() differ in the last
        # bit, and the NUMBA_DISABLE_JIT run must give the jitted numbers exactly
        d2 = d * d
        m2a, m3a = a[j, 1], a[j, 2]
        m2b, m3b = b[j, 1], b[j, 2]
        a[j, 3] = (
            a[j, 3]
            + b[j, 3]
            + d2 * d2 * fa * fb * (fa * fa - fa * fb + fb * fb) / (fn * fn * fn)
            + 6.0 * d * d * (fa * fa * m2b + fb * fb * m2a) / (fn * fn)
            + 4.0 * d * (fa * m3b - fb * m3a) / fn
        )
        a[j, 2] = (
            m3a
            + m3b
            + d2 * d * fa * fb * (fa - fb) / (fn * fn)
            + 3.0 * d * (fa * m2b - fb * m2a) / fn
        )
        a[j, 1] = m2a + m2b + d * d * fa * fb / fn
        a[j, 0] = a[j, 0] + d * fb / fn
    return n


@kernel(cache=True, inline="never")
def merge_chunks(mom, cnt, group_of, group_mom, group_n, group_bad):
    """Fold chunk records, in chunk order, into their groups (deterministic)."""
    for c in range(mom.shape[0]):
        gi = group_of[c]
        group_n[gi] = merge_into(group_n[gi], group_mom[gi], cnt[c, 0], mom[c])
        group_bad[gi] += cnt[c, 1]
