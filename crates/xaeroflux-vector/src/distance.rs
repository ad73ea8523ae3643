//! Distance kernels: inner product and squared L2.
//!
//! The widest instruction set the CPU offers is picked once, at index creation, by
//! runtime detection (`is_x86_feature_detected!`): AVX-512F, then AVX2 + FMA, then a
//! portable scalar loop with eight independent accumulators. All kernels accept any
//! length; stored vectors are zero-padded to a multiple of [`LANES`] so the hot loop
//! never runs a tail.

/// Stored vectors are padded to a multiple of this many `f32` (one 64-byte cache line).
pub(crate) const LANES: usize = 16;

/// A distance kernel over two slices of equal length.
pub(crate) type Kernel = fn(&[f32], &[f32]) -> f32;

/// The pair of kernels chosen for this CPU.
#[derive(Clone, Copy)]
pub(crate) struct Kernels {
    pub(crate) dot: Kernel,
    pub(crate) l2: Kernel,
    pub(crate) name: &'static str,
}

impl std::fmt::Debug for Kernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// Picks the fastest kernels this CPU supports.
pub(crate) fn detect() -> Kernels {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            return Kernels {
                dot: x86::dot_avx512,
                l2: x86::l2_avx512,
                name: "avx512",
            };
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            return Kernels {
                dot: x86::dot_avx2,
                l2: x86::l2_avx2,
                name: "avx2+fma",
            };
        }
    }
    scalar()
}

/// The portable kernels.
pub(crate) fn scalar() -> Kernels {
    Kernels {
        dot: dot_scalar,
        l2: l2_scalar,
        name: "scalar",
    }
}

/// Name of the kernel set the index picks on this CPU (`"avx512"`, `"avx2+fma"` or
/// `"scalar"`), for logs and benchmarks.
pub fn simd_level() -> &'static str {
    detect().name
}

pub(crate) fn dot_scalar(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; 8];
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        s += x * y;
    }
    s
}

pub(crate) fn l2_scalar(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; 8];
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for i in 0..8 {
            let d = x[i] - y[i];
            acc[i] += d * d;
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        let d = x - y;
        s += d * d;
    }
    s
}

/// Hints the CPU to pull the cache line at `p` into L1. A prefetch never faults, so
/// any address is fine.
#[inline(always)]
pub(crate) fn prefetch(p: *const f32) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `prefetcht0` is SSE (baseline on x86_64) and has no architectural effect
    // other than cache state; it does not fault on any address.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! The `unsafe` target-feature kernels are private; the safe wrappers are only
    //! handed out by [`super::detect`] after the feature check succeeded.
    use std::arch::x86_64::*;

    pub(super) fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: only reachable through `detect`, which checked avx2 and fma.
        unsafe { dot_avx2_impl(a, b) }
    }

    pub(super) fn l2_avx2(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: only reachable through `detect`, which checked avx2 and fma.
        unsafe { l2_avx2_impl(a, b) }
    }

    pub(super) fn dot_avx512(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: only reachable through `detect`, which checked avx512f.
        unsafe { dot_avx512_impl(a, b) }
    }

    pub(super) fn l2_avx512(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: only reachable through `detect`, which checked avx512f.
        unsafe { l2_avx512_impl(a, b) }
    }

    #[target_feature(enable = "avx2,fma")]
    fn hsum256(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps::<1>(s, s));
        _mm_cvtss_f32(s)
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot_avx2_impl(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut i = 0;
        // SAFETY: every load reads `[i, i + 8)` with `i + 8 <= n`, inside both slices.
        unsafe {
            let (mut s0, mut s1, mut s2, mut s3) = (
                _mm256_setzero_ps(),
                _mm256_setzero_ps(),
                _mm256_setzero_ps(),
                _mm256_setzero_ps(),
            );
            while i + 32 <= n {
                s0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), s0);
                s1 = _mm256_fmadd_ps(
                    _mm256_loadu_ps(pa.add(i + 8)),
                    _mm256_loadu_ps(pb.add(i + 8)),
                    s1,
                );
                s2 = _mm256_fmadd_ps(
                    _mm256_loadu_ps(pa.add(i + 16)),
                    _mm256_loadu_ps(pb.add(i + 16)),
                    s2,
                );
                s3 = _mm256_fmadd_ps(
                    _mm256_loadu_ps(pa.add(i + 24)),
                    _mm256_loadu_ps(pb.add(i + 24)),
                    s3,
                );
                i += 32;
            }
            while i + 8 <= n {
                s0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), s0);
                i += 8;
            }
            let mut s = hsum256(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
            while i < n {
                s += *pa.add(i) * *pb.add(i);
                i += 1;
            }
            s
        }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn l2_avx2_impl(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut i = 0;
        // SAFETY: every load reads `[i, i + 8)` with `i + 8 <= n`, inside both slices.
        unsafe {
            let (mut s0, mut s1, mut s2, mut s3) = (
                _mm256_setzero_ps(),
                _mm256_setzero_ps(),
                _mm256_setzero_ps(),
                _mm256_setzero_ps(),
            );
            while i + 32 <= n {
                let d0 = _mm256_sub_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)));
                let d1 = _mm256_sub_ps(
                    _mm256_loadu_ps(pa.add(i + 8)),
                    _mm256_loadu_ps(pb.add(i + 8)),
                );
                let d2 = _mm256_sub_ps(
                    _mm256_loadu_ps(pa.add(i + 16)),
                    _mm256_loadu_ps(pb.add(i + 16)),
                );
                let d3 = _mm256_sub_ps(
                    _mm256_loadu_ps(pa.add(i + 24)),
                    _mm256_loadu_ps(pb.add(i + 24)),
                );
                s0 = _mm256_fmadd_ps(d0, d0, s0);
                s1 = _mm256_fmadd_ps(d1, d1, s1);
                s2 = _mm256_fmadd_ps(d2, d2, s2);
                s3 = _mm256_fmadd_ps(d3, d3, s3);
                i += 32;
            }
            while i + 8 <= n {
                let d = _mm256_sub_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)));
                s0 = _mm256_fmadd_ps(d, d, s0);
                i += 8;
            }
            let mut s = hsum256(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
            while i < n {
                let d = *pa.add(i) - *pb.add(i);
                s += d * d;
                i += 1;
            }
            s
        }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn dot_avx512_impl(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut i = 0;
        // SAFETY: full loads read `[i, i + 16)` with `i + 16 <= n`; the masked tail load
        // only touches the `n - i < 16` lanes inside both slices.
        unsafe {
            let (mut s0, mut s1, mut s2, mut s3) = (
                _mm512_setzero_ps(),
                _mm512_setzero_ps(),
                _mm512_setzero_ps(),
                _mm512_setzero_ps(),
            );
            while i + 64 <= n {
                s0 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)), s0);
                s1 = _mm512_fmadd_ps(
                    _mm512_loadu_ps(pa.add(i + 16)),
                    _mm512_loadu_ps(pb.add(i + 16)),
                    s1,
                );
                s2 = _mm512_fmadd_ps(
                    _mm512_loadu_ps(pa.add(i + 32)),
                    _mm512_loadu_ps(pb.add(i + 32)),
                    s2,
                );
                s3 = _mm512_fmadd_ps(
                    _mm512_loadu_ps(pa.add(i + 48)),
                    _mm512_loadu_ps(pb.add(i + 48)),
                    s3,
                );
                i += 64;
            }
            while i + 16 <= n {
                s0 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)), s0);
                i += 16;
            }
            if i < n {
                let m: __mmask16 = (1u16 << (n - i)) - 1;
                s1 = _mm512_fmadd_ps(
                    _mm512_maskz_loadu_ps(m, pa.add(i)),
                    _mm512_maskz_loadu_ps(m, pb.add(i)),
                    s1,
                );
            }
            _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)))
        }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn l2_avx512_impl(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut i = 0;
        // SAFETY: as in `dot_avx512_impl`.
        unsafe {
            let (mut s0, mut s1, mut s2, mut s3) = (
                _mm512_setzero_ps(),
                _mm512_setzero_ps(),
                _mm512_setzero_ps(),
                _mm512_setzero_ps(),
            );
            while i + 64 <= n {
                let d0 = _mm512_sub_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)));
                let d1 = _mm512_sub_ps(
                    _mm512_loadu_ps(pa.add(i + 16)),
                    _mm512_loadu_ps(pb.add(i + 16)),
                );
                let d2 = _mm512_sub_ps(
                    _mm512_loadu_ps(pa.add(i + 32)),
                    _mm512_loadu_ps(pb.add(i + 32)),
                );
                let d3 = _mm512_sub_ps(
                    _mm512_loadu_ps(pa.add(i + 48)),
                    _mm512_loadu_ps(pb.add(i + 48)),
                );
                s0 = _mm512_fmadd_ps(d0, d0, s0);
                s1 = _mm512_fmadd_ps(d1, d1, s1);
                s2 = _mm512_fmadd_ps(d2, d2, s2);
                s3 = _mm512_fmadd_ps(d3, d3, s3);
                i += 64;
            }
            while i + 16 <= n {
                let d = _mm512_sub_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)));
                s0 = _mm512_fmadd_ps(d, d, s0);
                i += 16;
            }
            if i < n {
                let m: __mmask16 = (1u16 << (n - i)) - 1;
                let d = _mm512_sub_ps(
                    _mm512_maskz_loadu_ps(m, pa.add(i)),
                    _mm512_maskz_loadu_ps(m, pb.add(i)),
                );
                s1 = _mm512_fmadd_ps(d, d, s1);
            }
            _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)))
        }
    }

    #[cfg(test)]
    pub(super) fn available() -> Vec<super::Kernels> {
        let mut v = Vec::new();
        if std::is_x86_feature_detected!("avx512f") {
            v.push(super::Kernels {
                dot: dot_avx512,
                l2: l2_avx512,
                name: "avx512",
            });
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            v.push(super::Kernels {
                dot: dot_avx2,
                l2: l2_avx2,
                name: "avx2+fma",
            });
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn simd_kernels() -> Vec<Kernels> {
        #[cfg(target_arch = "x86_64")]
        return x86::available();
        #[cfg(not(target_arch = "x86_64"))]
        Vec::new()
    }

    /// Exact reference in f64.
    fn reference(a: &[f32], b: &[f32]) -> (f64, f64) {
        let dot = a
            .iter()
            .zip(b)
            .map(|(x, y)| f64::from(*x) * f64::from(*y))
            .sum();
        let l2 = a
            .iter()
            .zip(b)
            .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
            .sum();
        (dot, l2)
    }

    #[test]
    fn simd_agrees_with_scalar_on_every_length() {
        let mut state = 0x1234_5678_u64;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        };
        for n in 0..300 {
            let a: Vec<f32> = (0..n).map(|_| next()).collect();
            let b: Vec<f32> = (0..n).map(|_| next()).collect();
            let (rd, rl) = reference(&a, &b);
            let tol = 1e-4 * (n as f64 + 1.0);
            let mut all = simd_kernels();
            all.push(scalar());
            for k in all {
                let d = f64::from((k.dot)(&a, &b));
                let l = f64::from((k.l2)(&a, &b));
                assert!((d - rd).abs() <= tol, "{} dot n={n}: {d} vs {rd}", k.name);
                assert!((l - rl).abs() <= tol, "{} l2 n={n}: {l} vs {rl}", k.name);
            }
        }
    }

    #[test]
    fn kernels_read_only_their_inputs() {
        // Sub-slices of a larger buffer: the masked/tail loads must stay inside.
        let buf: Vec<f32> = (0..100).map(|i| i as f32).collect();
        for k in simd_kernels() {
            for n in 0..20 {
                let a = &buf[1..1 + n];
                let b = &buf[50..50 + n];
                let (rd, _) = reference(a, b);
                assert!((f64::from((k.dot)(a, b)) - rd).abs() < 1e-2 * (rd.abs() + 1.0));
            }
        }
    }
}
