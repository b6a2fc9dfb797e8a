//! Which method runs a product: the caller's forced choice, checked against what the
//! device supports, or the automatic [`MethodPolicy`]. Pure Rust, tested everywhere.

use crate::{Error, Method, MethodPolicy, NativeCode, Result, Shape};

/// The method to run for `requested` on a device where `supported(method)` says what
/// it can run (`Simple` and `Tiled` always; `Mps` where Metal Performance Shaders
/// supports the device; `Simdgroup` where the device has simdgroup matrix operations
/// and the kernel was compiled).
///
/// `Auto` follows `policy`, told whether MPS is supported. A forced method the device
/// cannot run is [`Error::Native`] with [`NativeCode::Unsupported`], the same error the
/// bridge gives, and never a silent substitute.
pub(crate) fn resolve_method(
    requested: Method,
    shape: Shape,
    policy: &MethodPolicy,
    supported: impl Fn(Method) -> bool,
) -> Result<Method> {
    match requested {
        Method::Auto => {
            let chosen = policy.choose(shape, supported(Method::Mps));
            if supported(chosen) {
                Ok(chosen)
            } else {
                // The policy only picks MPS when supported; tiled and simple always are.
                Ok(Method::Simple)
            }
        }
        forced if supported(forced) => Ok(forced),
        forced => Err(Error::Native {
            code: NativeCode::Unsupported,
            message: format!(
                "method `{forced}` is not supported on this device: {}",
                why(forced)
            ),
        }),
    }
}

fn why(method: Method) -> &'static str {
    match method {
        Method::Mps => "Metal Performance Shaders does not support it (MPSSupportsMTLDevice)",
        Method::Simdgroup => {
            "it needs simdgroup matrix operations (GPU family Apple7+ or Mac2) and the matmul_simdgroup kernel"
        }
        Method::Cublas | Method::CublasTf32 | Method::RegisterBlocked => {
            "it is a CUDA method (use the cuda backend)"
        }
        _ => "its kernel is not compiled",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(_: Method) -> bool {
        true
    }

    fn no_mps_no_simd(m: Method) -> bool {
        matches!(m, Method::Simple | Method::Tiled)
    }

    #[test]
    fn auto_follows_the_policy() {
        let p = MethodPolicy::default();
        let r = |shape, f: fn(Method) -> bool| resolve_method(Method::Auto, shape, &p, f).unwrap();
        assert_eq!(r(Shape::square(1024), all), Method::Mps);
        assert_eq!(r(Shape::square(1024), no_mps_no_simd), Method::Tiled);
        assert_eq!(r(Shape::square(128), all), Method::Tiled);
        assert_eq!(r(Shape::new(17, 33, 5), all), Method::Simple);
        assert_eq!(r(Shape::new(1, 600, 1), no_mps_no_simd), Method::Simple);
    }

    #[test]
    fn auto_uses_the_callers_thresholds() {
        let p = MethodPolicy {
            mps_min_dim: 32,
            tiled_min_dim: 4,
        };
        assert_eq!(
            resolve_method(Method::Auto, Shape::square(32), &p, all).unwrap(),
            Method::Mps
        );
        assert_eq!(
            resolve_method(Method::Auto, Shape::square(8), &p, all).unwrap(),
            Method::Tiled
        );
    }

    #[test]
    fn forced_methods_run_when_supported() {
        let p = MethodPolicy::default();
        for m in Method::FORCEABLE {
            assert_eq!(resolve_method(m, Shape::square(3), &p, all).unwrap(), m);
        }
    }

    #[test]
    fn forced_unsupported_methods_are_errors_never_substitutes() {
        let p = MethodPolicy::default();
        for m in [Method::Mps, Method::Simdgroup] {
            match resolve_method(m, Shape::square(1024), &p, no_mps_no_simd) {
                Err(Error::Native { code, message }) => {
                    assert_eq!(code, NativeCode::Unsupported);
                    assert!(message.contains(m.name()), "{message}");
                }
                other => panic!("{m}: {other:?}"),
            }
        }
        assert_eq!(
            resolve_method(Method::Tiled, Shape::square(2), &p, no_mps_no_simd).unwrap(),
            Method::Tiled
        );
    }
}
