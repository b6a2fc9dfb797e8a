//! faer held to its AVX2+FMA code on an AVX-512 CPU, for the `FXN_CPU_SIMD=avx2` proxy
//! of an AVX2-only machine: faer 0.24 picks AVX-512 by `is_x86_feature_detected!` and
//! takes no say in it, so this calls what faer calls, `private-gemm-x86`'s `gemm`, with
//! `InstrSet::Avx256` and the arguments faer 0.24.4 passes it (`linalg/matmul/mod.rs`).
//! faer's nano-gemm path for products of at most 16³ multiply-adds is left out: no
//! shape of the tables is that small.

use faer::{MatMut, MatRef};

/// Whether [`matmul`] runs here: x86-64 with AVX2 and FMA.
pub fn runs() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma");
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// `dst = lhs · rhs` through faer's AVX2+FMA GEMM on `threads` threads of the current
/// rayon pool (split, as faer does, from 4 · 4096 multiply-adds).
///
/// # Panics
/// Where [`runs`] is false, or the dimensions do not agree.
pub fn matmul(dst: MatMut<'_, f32>, lhs: MatRef<'_, f32>, rhs: MatRef<'_, f32>, threads: usize) {
    assert!(runs(), "faer's AVX2 code needs x86-64 with AVX2 and FMA");
    let (m, n, k) = (dst.nrows(), dst.ncols(), lhs.ncols());
    assert!(lhs.nrows() == m && rhs.nrows() == k && rhs.ncols() == n);
    #[cfg(target_arch = "x86_64")]
    {
        use private_gemm_x86::{Accum, DType, DstKind, IType, InstrSet};
        let threads = if m * n * k >= 4 * 4096 {
            threads.max(1)
        } else {
            1
        };
        let alpha = 1.0f32;
        // SAFETY: the CPU has AVX2 and FMA (`runs`, asserted above), which the `Avx256`
        // code needs. The pointers and strides are the views' own, in elements, so every
        // element read or written lies inside `dst`, `lhs` or `rhs` (dimensions
        // asserted to agree); `dst` is a mutable view, so it aliases neither operand.
        // No index lists (null, `DstKind::Full`), no diagonal (null), and `alpha` points
        // to an f32, as `DType::F32` requires.
        unsafe {
            private_gemm_x86::gemm(
                DType::F32,
                IType::U64,
                InstrSet::Avx256,
                m,
                n,
                k,
                dst.as_ptr_mut().cast(),
                dst.row_stride(),
                dst.col_stride(),
                std::ptr::null(),
                std::ptr::null(),
                DstKind::Full,
                Accum::Replace,
                lhs.as_ptr().cast(),
                lhs.row_stride(),
                lhs.col_stride(),
                false,
                std::ptr::null(),
                0,
                rhs.as_ptr().cast(),
                rhs.row_stride(),
                rhs.col_stride(),
                false,
                (&raw const alpha).cast(),
                threads,
            );
        }
    }
}
