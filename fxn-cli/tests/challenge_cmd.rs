//! `fxn-cli challenge`, run as a built binary.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn challenge(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fxn-cli"))
        .arg("challenge")
        .args(args)
        .env("FXN_THREADS", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("fxn-cli starts");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(stdin.as_bytes())
        .expect("stdin takes the challenge");
    child.wait_with_output().expect("fxn-cli ends")
}

fn json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "status {:?}, stderr {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON document")
}

#[test]
fn pinned_examples_from_stdin_envelope_and_bare() {
    let envelope = r#"{"type":"MATRIX_MULTIPLICATION","payload":{"matrixA":[[1,2],[3,4]],"matrixB":[[5,6],[7,8]]}}"#;
    let r = json(&challenge(&[], envelope));
    assert_eq!(r["C"], serde_json::json!([[19.0, 22.0], [43.0, 50.0]]));
    assert_eq!(r["matrixSize"], 2);
    assert_eq!(r["flops"], 16);
    assert_eq!(
        r["merkleRoot"],
        "0x93eea43e7660399dd3e4ac5e27a71f94486e4b646623f95d437ba7d75175a3b4"
    );
    let bare = r#"{"A":[[1,2,3],[4,5,6]],"B":[[7,8],[9,10],[11,12]]}"#;
    let r = json(&challenge(&["-"], bare));
    assert_eq!(r["C"], serde_json::json!([[58.0, 64.0], [139.0, 154.0]]));
    let r = json(&challenge(&["--pretty"], r#"{"size":10}"#));
    assert_eq!(r["flops"], 2000);
    assert_eq!(r["C"].as_array().map(Vec::len), Some(10));
    let r = json(&challenge(&[], r#"{"size":200,"selfCheck":true}"#));
    assert!(r.get("C").is_none());
    assert_eq!(r["selfCheck"]["passed"], true);
}

#[test]
fn reads_a_file() {
    let path = std::env::temp_dir().join(format!("fxn-challenge-{}.json", std::process::id()));
    std::fs::write(&path, r#"{"matrixA":[[2]],"matrixB":[[3]]}"#).unwrap();
    let r = json(&challenge(&[path.to_str().unwrap()], ""));
    std::fs::remove_file(&path).ok();
    assert_eq!(r["C"], serde_json::json!([[6.0]]));
}

#[test]
fn invalid_input_is_a_usage_error_with_the_message() {
    for (input, want) in [
        (
            r#"{"matrixA":[[1,2],[3]],"matrixB":[[1],[2]]}"#,
            "matrixA: row 1 has 1 values",
        ),
        (r#"{"size":-1}"#, "size: must be a positive integer"),
        (
            r#"{"type":"IDENTITY","payload":{}}"#,
            "unknown challenge type `IDENTITY`",
        ),
        ("", "EOF"),
    ] {
        let out = challenge(&[], input);
        assert_eq!(out.status.code(), Some(2), "{input}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.starts_with("fxn-cli: invalid challenge: "),
            "{stderr}"
        );
        assert!(stderr.contains(want), "{input}: {stderr}");
        assert!(out.stdout.is_empty());
    }
    let out = challenge(&["--max-dim", "4"], r#"{"size":5}"#);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("over the largest dimension allowed, 4"));
    let out = challenge(&["/nonexistent/challenge.json"], "");
    assert_eq!(out.status.code(), Some(2));
}
