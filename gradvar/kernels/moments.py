"""Streaming moments: per-chunk central moments and their exact merge (Pebay 2008).

A moment record for P coordinates is an array (P, 4) of [mean, M2, M3, M4], with M_k the
sum of k-th powers of deviations from the mean, plus its count.  Only finite estimates
(every coordinate finite) enter the moments; the others are counted apart.
"""

import numpy as np

from gradvar.kernels.jit import kernel

ROW_OF_LANES = 64  # values in one row of moments_rows' lanes (8 AVX-512 vectors)


def lane_rows(p):
    """R, the rows summed apart (in lanes) by :func:`moments_rows` for P coordinates; the
    kernel computes the same."""
    return max(1, ROW_OF_LANES // p)


def scratch_shape(p):
    """The shape of :func:`moments_rows`' scratch ``acc`` for P coordinates."""
    return 5, lane_rows(p) * p


def as_lanes(buf):
    """The rows of the C-contiguous ``buf`` (m, P) read R = lane_rows(P) at a time: a view
    (m // R, R P) of its first m // R * R rows, the ``tab`` of :func:`moments_rows` (made by
    NumPy: Numba's reshape would tie every cached kernel to numba.np.arrayobj, imported on
    each load)."""
    if not buf.flags.c_contiguous:  # reshape would copy: the view would not follow buf
        raise ValueError("as_lanes needs a C-contiguous buffer")
    m, p = buf.shape
    r = lane_rows(p)
    return buf.reshape(m * p)[: m // r * r * p].reshape(m // r, r * p)


def chunk_moments(buf, mom, cnt):
    """:func:`moments_rows` for a (P, m) ``buf``, one column per estimate (allocates
    its own scratch: for tests and callers outside the engine)."""
    rows = np.ascontiguousarray(buf.T)
    chunk_moments_rows(rows, as_lanes(rows), mom, cnt, np.empty(scratch_shape(buf.shape[0])))
    buf[...] = rows.T  # as the kernel leaves it: the non-finite estimates' rows NaN


@kernel(inline="never")  # out of line: p dynamic (tests)
def chunk_moments_rows(buf, tab, mom, cnt, acc):
    """:func:`moments_rows` with p = buf.shape[1]."""
    moments_rows(buf, tab, mom, cnt, acc, buf.shape[1])


@kernel(inline="always")
def moments_rows(buf, tab, mom, cnt, acc, p):
    """Two-pass central moments of the finite rows of ``buf`` (m, P) into ``mom`` (P, 4);
    cnt = [finite estimates, non-finite estimates]; ``tab`` is the same memory read R =
    :func:`lane_rows` rows at a time (:func:`as_lanes`, at least m // R of its rows), ``acc``
    scratch of :func:`scratch_shape`.

    An estimate (a row) is finite when every coordinate is.  The first pass sums x - x_0
    (x_0 the first row), so that a constant column (reparam on linear, exact) gets its
    value as the mean and M2 = 0 exactly, which a plain sum / m misses by an ulp; the
    second sums (x - mean)^k, k = 2, 3, 4.  Each pass keeps R accumulators per
    coordinate and moment, one per lane: row i adds into lane i mod R, and the lanes
    are added in order at the end, so the order of every sum is fixed by m and P alone.
    Over ``tab`` a pass is one flat loop of independent lanes, which LLVM vectorises (P = 2:
    0.3 ns per estimate, 1.2 ns with every sum in row order, bound by the latency of an
    addition).  A chunk with a non-finite estimate takes the plain path: its rows in order,
    those with a non-finite coordinate set to NaN and left out (x_0 the first finite row);
    so does the first pass of a chunk whose finite estimates overflow a lane's sum (its
    mean is then infinite, or NaN, either way).
    """
    m = buf.shape[0]
    r = max(1, ROW_OF_LANES // p)  # lane_rows(p)
    lanes = r * p
    whole = m // r
    rest = buf[whole * r :]
    ref, s1, s2, s3, s4 = acc[4], acc[0], acc[1], acc[2], acc[3]
    for j in range(p):
        for k in range(r):
            ref[k * p + j] = buf[0, j] if m > 0 else 0.0
    for q in range(lanes):
        s1[q] = 0.0
    for i in range(whole):
        for q in range(lanes):
            s1[q] += tab[i, q] - ref[q]
    for k in range(rest.shape[0]):
        for j in range(p):
            s1[k * p + j] += rest[k, j] - ref[j]
    total = 0.0
    for j in range(p):
        mom[j, 0] = 0.0
        for k in range(r):
            mom[j, 0] += s1[k * p + j]
        mom[j, 1] = ref[j]
        total += mom[j, 0]
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
        for k in range(r):
            ref[k * p + j] = mom[j, 0]
    for q in range(lanes):
        s2[q] = 0.0
        s3[q] = 0.0
        s4[q] = 0.0
    if good == m:
        for i in range(whole):
            for q in range(lanes):
                d = tab[i, q] - ref[q]
                d2 = d * d
                s2[q] += d2
                s3[q] += d2 * d
                s4[q] += d2 * d2
        for k in range(rest.shape[0]):
            for j in range(p):
                d = rest[k, j] - ref[j]
                d2 = d * d
                s2[k * p + j] += d2
                s3[k * p + j] += d2 * d
                s4[k * p + j] += d2 * d2
    else:  # in row order, the NaN rows left out
        for i in range(m):
            if not np.isnan(buf[i, 0]):
                for j in range(p):
                    d = buf[i, j] - ref[j]
                    d2 = d * d
                    s2[j] += d2
                    s3[j] += d2 * d
                    s4[j] += d2 * d2
    for j in range(p):
        mom[j, 1] = 0.0
        mom[j, 2] = 0.0
        mom[j, 3] = 0.0
        for k in range(r):
            mom[j, 1] += s2[k * p + j]
            mom[j, 2] += s3[k * p + j]
            mom[j, 3] += s4[k * p + j]


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
