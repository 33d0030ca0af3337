//! The binary's logs on stderr: no ANSI colours when stderr is not a terminal, and with
//! `--log-format json` one JSON object per line (level, target, fields), errors included.
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_ringleader");

/// `ringleader ARGS` with stderr captured through a pipe (as `2>file` or `2>&1 | less` would),
/// `NO_COLOR` and `RUST_LOG` unset: (success, stderr).
fn stderr_of(args: &[&str]) -> (bool, String) {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(args)
        .env_remove("NO_COLOR")
        .env_remove("RUST_LOG")
        .env("HOME", home.path())
        .env("XDG_STATE_HOME", home.path().join("state"))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Commands that log: an info line ("plot written") and a warning (an implausible decode).
fn logging_commands(dir: &std::path::Path, format: &str) -> Vec<Vec<String>> {
    let plot = dir.join("p.svg").to_str().unwrap().to_string();
    let args = |v: &[&str]| {
        let mut a = vec!["--log-format".to_string(), format.to_string()];
        a.extend(v.iter().map(|s| s.to_string()));
        a
    };
    vec![
        args(&[
            "sim",
            "reshard",
            "--keys",
            "1000",
            "--nodes",
            "3",
            "--no-timing",
            "--plot",
            &plot,
        ]),
        args(&["id", "--decode", "1"]),
    ]
}

#[test]
fn text_logs_have_no_colour_codes_off_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    for args in logging_commands(dir.path(), "text") {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, stderr) = stderr_of(&args);
        assert!(ok, "{args:?}: {stderr}");
        assert!(
            stderr.contains("INFO") || stderr.contains("WARN"),
            "{args:?}: {stderr}"
        );
        assert!(
            !stderr.contains("\x1b["),
            "{args:?}: colour codes in {stderr:?}"
        );
    }
}

/// Every stderr line is a JSON object with a level, a target and fields.message.
fn json_lines(stderr: &str) -> Vec<serde_json::Value> {
    assert!(!stderr.trim().is_empty(), "no log lines");
    stderr
        .lines()
        .map(|line| {
            let v: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"));
            assert!(v["level"].is_string(), "no level: {line}");
            assert!(v["target"].is_string(), "no target: {line}");
            assert!(
                v["fields"]["message"].is_string(),
                "no fields.message: {line}"
            );
            v
        })
        .collect()
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let cmds = logging_commands(dir.path(), "json");
    let args: Vec<&str> = cmds[0].iter().map(String::as_str).collect();
    let (ok, stderr) = stderr_of(&args);
    assert!(ok, "{stderr}");
    let lines = json_lines(&stderr);
    let plot = lines
        .iter()
        .find(|v| v["fields"]["message"] == "plot written")
        .unwrap_or_else(|| panic!("{stderr}"));
    assert_eq!(plot["level"], "INFO");
    assert!(
        plot["fields"]["path"].as_str().unwrap().ends_with("p.svg"),
        "{plot}"
    );

    let args: Vec<&str> = cmds[1].iter().map(String::as_str).collect();
    let (ok, stderr) = stderr_of(&args);
    assert!(ok, "{stderr}");
    let lines = json_lines(&stderr);
    assert_eq!(lines[0]["level"], "WARN", "{stderr}");

    // A failure is one more JSON line, not plain text.
    let (ok, stderr) = stderr_of(&["--log-format", "json", "check", "-c", "/nonexistent/r.toml"]);
    assert!(!ok);
    let lines = json_lines(&stderr);
    let last = lines.last().unwrap();
    assert_eq!(last["level"], "ERROR", "{stderr}");
    assert!(
        last["fields"]["error"]
            .as_str()
            .unwrap()
            .contains("no config file at /nonexistent/r.toml"),
        "{stderr}"
    );
}
