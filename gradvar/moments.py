"""Streaming moments: per-chunk central moments and their exact merge (Pebay 2008).

A moment record for P coordinates is an array (P, 4) of [mean, M2, M3, M4], with M_k the
sum of k-th powers of deviations from the mean, plus its count.  Only finite estimates
(every coordinate finite) enter the moments; the others are counted apart.
"""
import numpy as np

from .jit import kernel


@kernel
def chunk_moments(buf, mom, cnt):
    """Two-pass central moments of the finite columns of ``buf`` (P, m) into ``mom`` (P, 4);
    cnt = [finite estimates, non-finite estimates].  An estimate is finite when every
    coordinate is; the common all-finite case runs as contiguous, vectorizable loops."""
    p, m = buf.shape
    total = 0.0
    for j in range(p):
        # sums of x - x_0: a constant column (reparam on linear, exact) gets its value as
        # the mean and M2 = 0 exactly, which a plain sum / m misses by an ulp
        x0 = buf[j, 0] if m > 0 else 0.0
        acc = 0.0
        for i in range(m):
            acc += buf[j, i] - x0
        mom[j, 0] = acc
        mom[j, 1] = x0
        total += acc
    good = m
    if not np.isfinite(total):  # some estimate is non-finite (or a sum overflowed)
        good = 0
        for i in range(m):
            ok = True
            for j in range(p):
                ok = ok and np.isfinite(buf[j, i])
            if ok:
                good += 1
            else:
                for j in range(p):
                    buf[j, i] = np.nan
        for j in range(p):
            x0 = 0.0
            for i in range(m):
                if not np.isnan(buf[j, i]):
                    x0 = buf[j, i]
                    break
            acc = 0.0
            for i in range(m):
                if not np.isnan(buf[j, i]):
                    acc += buf[j, i] - x0
            mom[j, 0] = acc
            mom[j, 1] = x0
    cnt[0] = good
    cnt[1] = m - good
    for j in range(p):
        mom[j, 0] = mom[j, 1] + mom[j, 0] / good if good > 0 else 0.0
        mean = mom[j, 0]
        m2 = 0.0
        m3 = 0.0
        m4 = 0.0
        if good == m:
            for i in range(m):
                d = buf[j, i] - mean
                d2 = d * d
                m2 += d2
                m3 += d2 * d
                m4 += d2 * d2
        else:
            for i in range(m):
                if not np.isnan(buf[j, i]):
                    d = buf[j, i] - mean
                    d2 = d * d
                    m2 += d2
                    m3 += d2 * d
                    m4 += d2 * d2
        mom[j, 1] = m2
        mom[j, 2] = m3
        mom[j, 3] = m4


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
        a[j, 3] = (a[j, 3] + b[j, 3] + d2 * d2 * fa * fb * (fa * fa - fa * fb + fb * fb) / (fn * fn * fn)
                   + 6.0 * d * d * (fa * fa * m2b + fb * fb * m2a) / (fn * fn)
                   + 4.0 * d * (fa * m3b - fb * m3a) / fn)
        a[j, 2] = (m3a + m3b + d2 * d * fa * fb * (fa - fb) / (fn * fn)
                   + 3.0 * d * (fa * m2b - fb * m2a) / fn)
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
