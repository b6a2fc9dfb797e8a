//! Turning what the bridge reports into the crate's types: status codes and message
//! buffers into [`Error`], GPU seconds into a [`Duration`]. Pure Rust, so it is tested on
//! every platform even though only the macOS build calls it.

use std::ffi::c_char;
use std::time::Duration;

use crate::{BackendKind, Error, NativeCode};

/// The NUL-terminated text at the start of `chars` (all of it when there is no NUL),
/// decoded as UTF-8 with invalid bytes replaced.
#[cfg_attr(not(metal_bridge), allow(dead_code))]
pub(crate) fn c_text(chars: &[c_char]) -> String {
    let bytes: Vec<u8> = chars
        .iter()
        .take_while(|&&c| c != 0)
        // `c_char` is i8 or u8 by target; either way this keeps the byte's bits.
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The error for a bridge status `code` (never `METAL_SUCCESS`) with the bridge's
/// message (the caller puts `metal_error_string` in place of an empty one).
#[cfg_attr(not(metal_bridge), allow(dead_code))]
pub(crate) fn native_error(code: i32, message: &str) -> Error {
    Error::Native {
        code: NativeCode::from_raw(code),
        message: message.to_owned(),
    }
}

/// The error for a failed `metal_init`: no device is [`Error::Unavailable`] (so `auto`
/// selection falls back to the CPU); anything else, e.g. a shader that does not compile,
/// is [`Error::Native`].
#[cfg_attr(not(metal_bridge), allow(dead_code))]
pub(crate) fn init_error(code: i32, message: &str) -> Error {
    if code == metal_matmul_sys::METAL_ERROR_NO_DEVICE {
        Error::Unavailable {
            backend: BackendKind::Metal,
            reason: message.to_owned(),
        }
    } else {
        native_error(code, message)
    }
}

/// The GPU time the bridge measured, when it measured one: `None` for zero, negative or
/// non-finite seconds (Metal answers 0 when it has no timestamps).
pub(crate) fn gpu_duration(seconds: f64) -> Option<Duration> {
    if seconds > 0.0 {
        Duration::try_from_secs_f64(seconds).ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metal_matmul_sys as sys;

    fn chars(text: &str, len: usize) -> Vec<c_char> {
        let mut buf = vec![0 as c_char; len];
        for (slot, byte) in buf.iter_mut().zip(text.bytes()) {
            *slot = byte as c_char;
        }
        buf
    }

    #[test]
    fn every_code_maps_to_its_variant_and_back() {
        let known = [
            (sys::METAL_ERROR_NO_DEVICE, NativeCode::NoDevice),
            (sys::METAL_ERROR_SHADER_COMPILE, NativeCode::ShaderCompile),
            (sys::METAL_ERROR_OUT_OF_MEMORY, NativeCode::OutOfMemory),
            (
                sys::METAL_ERROR_INVALID_DIMENSIONS,
                NativeCode::InvalidDimensions,
            ),
            (sys::METAL_ERROR_KERNEL_TIMEOUT, NativeCode::KernelTimeout),
            (sys::METAL_ERROR_GPU_FAULT, NativeCode::GpuFault),
            (
                sys::METAL_ERROR_INVALID_ARGUMENT,
                NativeCode::InvalidArgument,
            ),
            (sys::METAL_ERROR_UNSUPPORTED, NativeCode::Unsupported),
        ];
        for (raw, variant) in known {
            assert_eq!(NativeCode::from_raw(raw), variant, "code {raw}");
            assert_eq!(variant.raw(), raw);
            let err = native_error(raw, "detail from the bridge");
            assert_eq!(
                err,
                Error::Native {
                    code: variant,
                    message: "detail from the bridge".to_owned()
                }
            );
            assert!(err.to_string().contains(&raw.to_string()), "{err}");
        }
    }

    #[test]
    fn unknown_codes_are_kept_not_guessed() {
        for raw in [-9, -100, 1, 42, i32::MIN, i32::MAX] {
            let err = native_error(raw, "Unknown error");
            assert_eq!(
                err,
                Error::Native {
                    code: NativeCode::Unknown(raw),
                    message: "Unknown error".to_owned()
                }
            );
            assert_eq!(NativeCode::Unknown(raw).raw(), raw);
        }
    }

    #[test]
    fn a_compiler_log_survives_intact() {
        let log = "Shader compilation failed: program_source:3:5: error: use of undeclared identifier 'x'\n    x = 1;\n    ^";
        let buf = chars(log, sys::METAL_ERROR_MESSAGE_LEN as usize);
        match native_error(sys::METAL_ERROR_SHADER_COMPILE, &c_text(&buf)) {
            Error::Native { code, message } => {
                assert_eq!(code, NativeCode::ShaderCompile);
                assert_eq!(message, log);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn init_failures_split_into_unavailable_and_native() {
        match init_error(sys::METAL_ERROR_NO_DEVICE, "no device here") {
            Error::Unavailable { backend, reason } => {
                assert_eq!(backend, BackendKind::Metal);
                assert_eq!(reason, "no device here");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            init_error(sys::METAL_ERROR_SHADER_COMPILE, "log"),
            Error::Native {
                code: NativeCode::ShaderCompile,
                ..
            }
        ));
    }

    #[test]
    fn c_text_stops_at_nul_and_tolerates_no_nul_and_bad_utf8() {
        assert_eq!(c_text(&chars("abc", 8)), "abc");
        assert_eq!(c_text(&chars("abcd", 4)), "abcd");
        assert_eq!(c_text(&[]), "");
        let bad = [0xff_u8 as c_char, b'x' as c_char, 0];
        assert_eq!(c_text(&bad), "\u{fffd}x");
    }

    #[test]
    fn gpu_time_is_none_when_metal_has_none() {
        assert_eq!(gpu_duration(0.0), None);
        assert_eq!(gpu_duration(-1.0), None);
        assert_eq!(gpu_duration(f64::NAN), None);
        assert_eq!(gpu_duration(f64::INFINITY), None);
        assert_eq!(gpu_duration(0.25), Some(Duration::from_millis(250)));
    }
}
