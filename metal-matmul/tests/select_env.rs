//! `FXN_BACKEND` overrides `auto`. In its own test binary: it sets the process's
//! environment, which no other test may observe.

use metal_matmul::{BACKEND_ENV, BackendChoice, BackendKind, Error, effective_choice, select};

#[test]
fn the_environment_overrides_auto_only() {
    // SAFETY: this binary has a single test, so no other thread reads the environment
    // while it is changed.
    unsafe { std::env::set_var(BACKEND_ENV, "cpu") };
    assert_eq!(
        effective_choice(BackendChoice::Auto).unwrap(),
        BackendChoice::Cpu
    );
    assert_eq!(
        select(BackendChoice::Auto).unwrap().backend.kind(),
        BackendKind::Cpu
    );
    // An explicit choice wins over the environment.
    assert_eq!(
        effective_choice(BackendChoice::Metal).unwrap(),
        BackendChoice::Metal
    );

    // SAFETY: as above.
    unsafe { std::env::set_var(BACKEND_ENV, "quantum") };
    let err = effective_choice(BackendChoice::Auto).unwrap_err();
    assert!(
        matches!(err, Error::InvalidArgument(ref m) if m.contains(BACKEND_ENV)),
        "{err}"
    );

    // SAFETY: as above.
    unsafe { std::env::set_var(BACKEND_ENV, "") };
    assert_eq!(
        effective_choice(BackendChoice::Auto).unwrap(),
        BackendChoice::Auto
    );
    // SAFETY: as above.
    unsafe { std::env::remove_var(BACKEND_ENV) };
}
