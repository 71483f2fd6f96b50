"""Registration of a blurred and a sharp z-scan of the same region: WFCON's PSF-based method and plain
3D cross-correlation (`zse register`, `zse.workflows.register`). Pure numpy/scipy (no torch).

Arrays: ``sharp_zyx`` and ``blurred_zyx`` are (Z, Y, X) arrays of one shape (any real dtype; used as
float64). Shifts and offsets are (z, y, x) in voxels, floats.

**Offset convention.** Both estimators return the *offset* ``p`` of the blurred scan relative to the
sharp one: ``blurred(r) ≈ (h ∗ sharp)(r − p)`` for a blur ``h`` centred on the origin, i.e. the
blurred scan shows the sharp one displaced by ``+p`` voxels (a structure at voxel ``r`` of the sharp
scan appears at ``r + p`` in the blurred one). `registration_shift` turns it into the shift that maps
MOVING onto FIXED: ``fixed(r) ≈ moving(r − shift)``, so ``scipy.ndimage.shift(moving, shift) ≈ fixed``
(up to the blur). With the sharp scan as FIXED (the default) ``shift = −p``; with the sharp scan as
MOVING ``shift = +p``.

**Intensities.** Each region is divided by its mean and the mean removed: ``v / mean(v) − 1`` (a
brightfield scan then lies in about [−1, 0.1]: what a [0, 1] scaling of an 8-bit image gives, less its
constant background). The constant background carries no position and, left in, would swamp the data
term; removing it also removes what fixed the kernel's sum, which the μ term then sets.

**PSF method** (`estimate_kernel`): the 3D kernel ``f`` on the box ``±R`` (``R = max_shift_zyx``)
minimising ``‖f ∗ x − y‖² + λ‖∇f‖₁ + μ(1ᵀf − 1)²`` (x: sharp, y: blurred, normalised as above; the
squared norm summed over the valid voxels V — those at least R from every face, whose whole kernel
window lies inside the region —; ∇ forward differences inside the box; ‖·‖₁ the anisotropic sum of
absolute differences along z, y, x), solved with the first-order primal–dual algorithm of Chambolle &
Pock (2011, Alg. 1, θ = 1) with K = ∇ and the smooth part G(f) = ‖f ∗ x − y‖² + μ(1ᵀf − 1)² taken in its
exact proximal step. G is a quadratic, ``fᵀAf − 2bᵀf + ‖y_V‖² + μ(1ᵀf − 1)²``, with ``b[s] = Σ_{r∈V}
y(r) x(r − s)`` (exact, by FFT) and A the Gram matrix ``Σ_{r∈V} x(r − s) x(r − t)`` approximated by the
autocorrelation of x restricted to V (`_normal_equations`: positive semi-definite by construction, so
G stays convex; the exact one would cost one FFT per kernel voxel; the difference lies in slabs of width
≤ 2R at V's faces, so the region should be several times the box); its proximal step is one solve with
a matrix factorised once (Cholesky). The offset is the position of f's maximum.

λ = 1 and μ = 10 are the published values and the defaults. Their weight is relative to the data term,
which grows with the number of valid voxels times the contrast variance, so the published λ is not
meaningless here but its effect depends on the region. Measured: on a 16 × 48 × 48 region (Gaussian
blur, shift (1.3, −2.4, 0.7)) λ = 1 flattens the kernel (peak 0.033 vs 0.041 at λ = 0) and moves the
estimate by ≤ 0.12 voxel (errors 0.11, 0.02, 0.08 vs 0.13, 0.10, 0.03 at λ = 0), λ = 10 wrecks it
(0.8 voxel off in z); on the benchmark's 29 × 96 × 96 regions λ = 0 and λ = 1 differ by ≤ 0.01 voxel
in mean error (benchmarks/results/registration.md). μ = 10 holds the kernel's sum only loosely where the
data pull (1.13 on a 29 × 256 × 256 simulator region). No re-tuning was done; both are options
(``lam``, ``mu``).

**Cross-correlation** (`cross_correlation`): the normalised cross-correlation over the same box and
the same valid voxels, ``c(s) = Σ_{r∈V} y(r) x(r − s) / (‖y_V‖ ‖x_{V−s}‖)`` (x, y normalised as above;
global, not windowed, means); the offset is its maximum.

**Sub-voxel** (`subvoxel_peak`, fit "auto" for both methods): per axis, from the maximum and its two
neighbours along that axis — their centroid where the peak is narrower than about a voxel (the PSF
kernel laterally, where the in-focus PSF is smaller than a voxel: the neighbours hold the linear-
interpolation weights of a sampled point), the vertex of the parabola through them where it is broader
(the kernel axially, the correlation everywhere); within ±0.5 voxel. Along an axis where the maximum lies
on the box's face the integer position is kept and the axis is listed in ``at_border``: the shift may
exceed the box there. The box must hold the shift plus the blur's tail: a kernel cut by the box's face
piles its mass up at that face.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import scipy.fft
import scipy.linalg

from zse.errors import ConfigError, InputError

METHODS = ("psf", "xcorr")
LAMBDA = 1.0
MU = 10.0
TAU = 1e-3
"""Primal step of Chambolle–Pock (σ = 0.99 / (12 τ)): the kernel is ~10⁻², the dual ≤ λ = 1, so a small
τ and a large σ balance them (measured: 10× fewer iterations than τ = σ for the same objective)."""
MAX_KERNEL_VOXELS = 4000
"""Largest kernel box the PSF method accepts: its normal matrix is (n, n) float64 (4000: 128 MB, with its
factor and int32 index arrays ≈ 0.6 GB at the peak)."""


@dataclass(frozen=True)
class Estimate:
    """One estimate: ``offset_zyx`` (voxels, the convention of the module doc), ``peak_value`` (the kernel's
    maximum for psf, the normalised correlation for xcorr), ``integer_peak_zyx`` (the maximum's voxel,
    relative to the box centre), ``at_border`` (axes "z", "y", "x" whose maximum lies on the box's face),
    ``refined`` (axes refined by the parabola), ``kernel`` (psf: f, (2Rz+1, 2Ry+1, 2Rx+1) float64; xcorr:
    the correlation over the same box), ``iterations`` (psf; 0 for xcorr), ``objective`` (psf: the
    objective's value at the result; None for xcorr)."""

    method: str
    offset_zyx: tuple[float, float, float]
    peak_value: float
    integer_peak_zyx: tuple[int, int, int]
    at_border: tuple[str, ...]
    refined: tuple[str, ...]
    kernel: np.ndarray = field(repr=False)
    iterations: int = 0
    objective: float | None = None
    converged: bool = True


# ------------------------------------------------------------------------------------------ helpers


def check_max_shift(max_shift_zyx: Sequence[int], shape_zyx: Sequence[int] | None = None) -> tuple[int, int, int]:
    """Three integers ≥ 0; with `shape_zyx`, each below half the region's size along its axis."""
    try:
        r = tuple(int(v) for v in max_shift_zyx)
        ok = len(r) == 3 and all(v >= 0 and float(v) == float(w) for v, w in zip(r, max_shift_zyx, strict=True))
    except (TypeError, ValueError):
        ok, r = False, ()
    if not ok:
        raise ConfigError(f"--max-shift {tuple(max_shift_zyx)!r} is invalid; valid: three integers Z,Y,X >= 0 (voxels), e.g. 3,6,6")
    if shape_zyx is not None:
        for a, rv, n in zip("zyx", r, shape_zyx, strict=True):
            if 2 * rv + 1 > n:
                raise ConfigError(f"--max-shift {a} = {rv} needs a region of at least {2 * rv + 1} voxels along {a}; "
                                  f"the region has {n}: enlarge the region or lower --max-shift")
    return r[0], r[1], r[2]


def normalise(volume_zyx: np.ndarray, what: str = "region") -> np.ndarray:
    """``v / mean(v) − 1`` as float64 (module doc). InputError for a region with a non-positive or
    non-finite mean, or without contrast (constant)."""
    v = np.asarray(volume_zyx, dtype=np.float64)
    m = float(v.mean()) if v.size else 0.0
    if not np.isfinite(m) or m <= 0:
        raise InputError(f"{what}: mean intensity {m:g}; registration needs a region with positive intensities (not blank)")
    out = v / m - 1.0
    if float(out.std()) < 1e-9:
        raise InputError(f"{what}: the region is constant (no contrast); choose a region with tissue (--region)")
    return out


def _xcorr(a: np.ndarray, b: np.ndarray, lag_zyx: Sequence[int]) -> np.ndarray:
    """c(δ) = Σ_u a(u) b(u + δ) on lags −L..L per axis (centre index L), a and b zero outside their
    (equal) shape: linear, not circular (the FFT size is at least shape + L)."""
    size = [scipy.fft.next_fast_len(n + lag, real=True) for n, lag in zip(a.shape, lag_zyx, strict=True)]
    c = scipy.fft.irfftn(np.conj(scipy.fft.rfftn(a, size)) * scipy.fft.rfftn(b, size), size)
    return np.asarray(c[np.ix_(*[np.r_[-lag:lag + 1] % n for lag, n in zip(lag_zyx, size, strict=True)])])


def _valid_mask(shape: Sequence[int], r: Sequence[int]) -> np.ndarray:
    """1 on the valid voxels V (at least r from every face, per axis), 0 elsewhere."""
    mask = np.zeros(tuple(shape))
    mask[tuple(slice(v, n - v) for v, n in zip(r, shape, strict=True))] = 1.0
    return mask


def subvoxel_peak(values: np.ndarray, fit: str = "auto") -> tuple[tuple[int, int, int], tuple[float, float, float],
                                                                  tuple[str, ...], tuple[str, ...]]:
    """The maximum of a 3D array, refined per axis from the maximum v₀ and its two neighbours v₋, v₊ along
    that axis (module doc): "parabola" — the vertex of the parabola through them,
    (v₋ − v₊) / (2(v₋ − 2v₀ + v₊)) (skipped where not concave); "centroid" — their centroid with negative
    values set to 0, (v₊ − v₋) / (v₋ + v₀ + v₊); "auto" — the centroid where the peak is narrower than
    about a voxel (1 − (v₋ + v₊) / (2v₀) > 0.5: a sampled point, whose neighbours carry its linear-
    interpolation weights), the parabola where it is broader. Either is kept within ±0.5 voxel.

    Returns (integer index, refined position (index units), axes at the array's face (not refined), axes
    refined).
    """
    if fit not in ("auto", "parabola", "centroid"):
        raise ConfigError(f"sub-voxel fit {fit!r} is invalid; valid: auto, parabola, centroid")
    peak = tuple(int(i) for i in np.unravel_index(int(np.argmax(values)), values.shape))
    pos = [float(p) for p in peak]
    border: list[str] = []
    refined: list[str] = []
    for a, name in enumerate("zyx"):
        p, n = int(peak[a]), values.shape[a]
        if n == 1:
            continue
        if p == 0 or p == n - 1:
            border.append(name)
            continue
        lo = list(peak)
        hi = list(peak)
        lo[a] = p - 1
        hi[a] = p + 1
        vm, v0, vp = float(values[tuple(lo)]), float(values[peak]), float(values[tuple(hi)])
        narrow = v0 > 0 and 1.0 - (vm + vp) / (2.0 * v0) > 0.5
        if fit == "centroid" or (fit == "auto" and narrow):
            if v0 > 0:
                vm_, vp_ = max(vm, 0.0), max(vp, 0.0)
                pos[a] = p + float(np.clip((vp_ - vm_) / (vm_ + v0 + vp_), -0.5, 0.5))
                refined.append(name)
            continue
        den = vm - 2.0 * v0 + vp
        if den < 0:
            pos[a] = p + float(np.clip(0.5 * (vm - vp) / den, -0.5, 0.5))
            refined.append(name)
    ip = (int(peak[0]), int(peak[1]), int(peak[2]))
    return ip, (pos[0], pos[1], pos[2]), tuple(border), tuple(refined)


def _normal_equations(x: np.ndarray, y: np.ndarray, r: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, float]:
    """(A, b, ‖y over V‖²) of the data term over the valid voxels V (module doc), s, t the box's offsets in
    C order: b[s] = Σ_{r∈V} y(r) x(r − s) exactly; A[s, t] = c(s − t) with c the autocorrelation of x
    restricted to V (zero elsewhere): the Gram matrix of the shifted copies of that x, so positive
    semi-definite by construction, where the exact Gram matrix Σ_{r∈V} x(r − s) x(r − t) differs from it
    only by the slabs of width ≤ 2R at V's faces."""
    mask = _valid_mask(x.shape, r)
    lag = [2 * v for v in r]
    x_v = x * mask
    c_xx = _xcorr(x_v, x_v, lag)
    c_xy = _xcorr(x, y * mask, r)
    offs = np.stack(np.meshgrid(*[np.arange(-v, v + 1, dtype=np.int32) for v in r], indexing="ij"), -1).reshape(-1, 3)
    a_mat = c_xx[tuple(offs[:, None, a] - offs[None, :, a] + np.int32(lag[a]) for a in range(3))]
    a_mat = 0.5 * (a_mat + a_mat.T)  # exact symmetry (c(δ) = c(−δ) up to rounding)
    b = c_xy[tuple(np.asarray(r)[:, None] + offs.T)]
    return a_mat, b, float(((y * mask) ** 2).sum())


def _grad(f: np.ndarray) -> np.ndarray:
    """Forward differences along z, y, x, zero on the last face (Neumann): (3, *f.shape)."""
    g = np.zeros((3, *f.shape))
    g[0, :-1] = f[1:] - f[:-1]
    g[1, :, :-1] = f[:, 1:] - f[:, :-1]
    g[2, :, :, :-1] = f[:, :, 1:] - f[:, :, :-1]
    return g


def _div(p: np.ndarray) -> np.ndarray:
    """The negative adjoint of `_grad`: ⟨_grad(f), p⟩ = −⟨f, _div(p)⟩."""
    d = np.zeros(p.shape[1:])
    for a in range(3):
        pa = np.moveaxis(p[a], a, 0)
        da = np.moveaxis(d, a, 0)
        da[:-1] += pa[:-1]
        da[1:] -= pa[:-1]
    return d


# ------------------------------------------------------------------------------------------ methods


def estimate_kernel(sharp_zyx: np.ndarray, blurred_zyx: np.ndarray, max_shift_zyx: Sequence[int], *,
                    lam: float = LAMBDA, mu: float = MU, max_iter: int = 500, tol: float = 1e-6,
                    tau: float = TAU, fit: str = "auto") -> Estimate:
    """The PSF method (module doc): f on the box ±max_shift_zyx and the offset at its peak.

    Chambolle–Pock steps τ (`TAU`) and σ = 0.99/(12τ) (‖∇‖² ≤ 12 in 3D), from the flat kernel 1/n; stops when the kernel's largest change in
    an iteration falls below ``tol`` × its largest value, or after ``max_iter`` iterations
    (``converged`` False then). ConfigError for invalid options, InputError for unusable regions.
    """
    x, y = _pair(sharp_zyx, blurred_zyx)
    r = check_max_shift(max_shift_zyx, x.shape)
    if not (np.isfinite(lam) and lam >= 0 and np.isfinite(mu) and mu >= 0):
        raise ConfigError(f"lambda {lam!r}, mu {mu!r} are invalid; valid: finite numbers >= 0")
    if max_iter < 1:
        raise ConfigError(f"iterations {max_iter!r} is invalid; valid: an integer >= 1")
    kshape = tuple(2 * v + 1 for v in r)
    n = int(np.prod(kshape))
    if n > MAX_KERNEL_VOXELS:
        raise ConfigError(f"--max-shift {','.join(map(str, r))} gives a kernel of {n} voxels; the PSF method takes at most "
                          f"{MAX_KERNEL_VOXELS} (its normal matrix is n × n): lower --max-shift or use --method xcorr")
    a_mat, b, yy = _normal_equations(x, y, r)
    sigma = 0.99 / (12.0 * tau)
    m = 2.0 * a_mat + 2.0 * mu + np.eye(n) / tau  # 2A + 2μ 11ᵀ + I/τ (the μ term is rank one: added to every entry)
    factor = scipy.linalg.cho_factor(m, lower=False, overwrite_a=True, check_finite=False)
    del m
    rhs0 = 2.0 * b + 2.0 * mu
    f = np.full(kshape, 1.0 / n)  # start: the flat kernel (no offset preferred)
    f_bar = f.copy()
    p = np.zeros((3, *kshape))
    it, converged = 0, False
    while it < max_iter:
        it += 1
        p = np.clip(p + sigma * _grad(f_bar), -lam, lam)
        v = f + tau * _div(p)
        f_new = scipy.linalg.cho_solve(factor, rhs0 + v.ravel() / tau, check_finite=False).reshape(kshape)
        change = float(np.abs(f_new - f).max())
        f_bar = 2.0 * f_new - f
        f = f_new
        if change <= tol * max(float(np.abs(f).max()), 1e-12):
            converged = True
            break
    if not np.isfinite(f).all():
        raise InputError("the primal–dual solver diverged (non-finite kernel); try --method xcorr or another region")
    fv = f.ravel()
    objective = float(fv @ a_mat @ fv - 2.0 * b @ fv + yy + lam * np.abs(_grad(f)).sum()
                      + mu * (fv.sum() - 1.0) ** 2)
    ip, pos, border, refined = subvoxel_peak(f, fit)
    off = tuple(float(pv - rv) for pv, rv in zip(pos, r, strict=True))
    return Estimate(method="psf", offset_zyx=(off[0], off[1], off[2]), peak_value=float(f[ip]),
                    integer_peak_zyx=(ip[0] - r[0], ip[1] - r[1], ip[2] - r[2]), at_border=border, refined=refined,
                    kernel=f, iterations=it, objective=objective, converged=converged)


def cross_correlation(sharp_zyx: np.ndarray, blurred_zyx: np.ndarray, max_shift_zyx: Sequence[int], *,
                      fit: str = "auto") -> Estimate:
    """Normalised 3D cross-correlation over the box ±max_shift_zyx (FFT, linear) and the offset at its peak."""
    x, y = _pair(sharp_zyx, blurred_zyx)
    r = check_max_shift(max_shift_zyx, x.shape)
    mask = _valid_mask(x.shape, r)
    y_v = y * mask
    norm_x = np.sqrt(np.maximum(_xcorr(x * x, mask, r), 1e-30))  # ‖x over V − s‖ for every s
    c = _xcorr(x, y_v, r) / (norm_x * max(float(np.linalg.norm(y_v)), 1e-30))
    ip, pos, border, refined = subvoxel_peak(c, fit)
    off = tuple(float(pv - rv) for pv, rv in zip(pos, r, strict=True))
    return Estimate(method="xcorr", offset_zyx=(off[0], off[1], off[2]), peak_value=float(c[ip]),
                    integer_peak_zyx=(ip[0] - r[0], ip[1] - r[1], ip[2] - r[2]), at_border=border, refined=refined,
                    kernel=c)


def _pair(sharp_zyx: np.ndarray, blurred_zyx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s, b = np.asarray(sharp_zyx), np.asarray(blurred_zyx)
    if s.ndim != 3 or s.shape != b.shape:
        raise InputError(f"registration needs two (Z, Y, X) regions of one shape; got {s.shape} and {b.shape}")
    return normalise(s, "sharp region"), normalise(b, "blurred region")


def estimate(sharp_zyx: np.ndarray, blurred_zyx: np.ndarray, max_shift_zyx: Sequence[int], *,
             method: str = "psf", lam: float = LAMBDA, mu: float = MU, max_iter: int = 500,
             fit: str = "auto") -> Estimate:
    """`estimate_kernel` (method "psf") or `cross_correlation` (method "xcorr"); `fit` as `subvoxel_peak`."""
    if method == "psf":
        return estimate_kernel(sharp_zyx, blurred_zyx, max_shift_zyx, lam=lam, mu=mu, max_iter=max_iter, fit=fit)
    if method == "xcorr":
        return cross_correlation(sharp_zyx, blurred_zyx, max_shift_zyx, fit=fit)
    raise ConfigError(f"--method {method!r} is invalid; valid: {', '.join(METHODS)}")


def registration_shift(offset_zyx: Sequence[float], sharp: Literal["fixed", "moving"]) -> tuple[float, float, float]:
    """The shift that maps MOVING onto FIXED (``fixed(r) ≈ moving(r − shift)``) from the offset of the
    blurred scan relative to the sharp one (module doc): −offset when FIXED is the sharp scan, +offset
    when MOVING is."""
    if sharp not in ("fixed", "moving"):
        raise ConfigError(f"--sharp {sharp!r} is invalid; valid: fixed, moving")
    sign = -1.0 if sharp == "fixed" else 1.0
    z, y, x = (sign * float(v) + 0.0 for v in offset_zyx)
    return (z, y, x)


def register_arrays(moving_zyx: np.ndarray, fixed_zyx: np.ndarray, max_shift_zyx: Sequence[int], *,
                    method: str = "psf", sharp: Literal["fixed", "moving"] = "fixed", lam: float = LAMBDA,
                    mu: float = MU, max_iter: int = 500, fit: str = "auto") -> tuple[tuple[float, float, float], Estimate]:
    """(shift mapping MOVING onto FIXED, the estimate) for two (Z, Y, X) regions of one shape; `sharp`
    says which of the two is the sharp scan (the kernel blurs it into the other)."""
    if sharp not in ("fixed", "moving"):
        raise ConfigError(f"--sharp {sharp!r} is invalid; valid: fixed, moving")
    pair = (fixed_zyx, moving_zyx) if sharp == "fixed" else (moving_zyx, fixed_zyx)
    est = estimate(pair[0], pair[1], max_shift_zyx, method=method, lam=lam, mu=mu, max_iter=max_iter, fit=fit)
    return registration_shift(est.offset_zyx, sharp), est
