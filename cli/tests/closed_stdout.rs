//! Every printing subcommand with its standard output closed early (`ringleader ... | head -1`):
//! it ends quietly with exit status 0, never a "failed printing to stdout" panic (exit 101).
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ringleader");
const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/ringleader.toml");

/// `ringleader ARGS` with stdout and stderr piped; no colours or state directory of the user's.
fn spawn(args: &[&str], home: &std::path::Path) -> Child {
    Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("RINGLEADER_WORKER_ID")
        .env("HOME", home)
        .env("XDG_STATE_HOME", home.join("state"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Run `ringleader ARGS`, read the first `read_first` bytes of its stdout (none: the pipe is
/// closed before the command writes anything, so even short outputs meet a closed pipe),
/// close the pipe, and return the exit status and stderr.
fn with_stdout_closed(args: &[&str], read_first: usize) -> (std::process::ExitStatus, String) {
    let home = tempfile::tempdir().unwrap();
    let mut child = spawn(args, home.path());
    let mut stdout = child.stdout.take().unwrap();
    let mut first = vec![0; read_first];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_quiet(args: &[&str], read_first: usize) {
    let (status, stderr) = with_stdout_closed(args, read_first);
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "{args:?}: {stderr}"
    );
    assert_eq!(
        status.code(),
        Some(0),
        "{args:?}: {status}, stderr: {stderr}"
    );
}

#[test]
fn check_ends_quietly() {
    assert_quiet(&["check", "-c", EXAMPLE], 0);
    // `| head -1`: the first line was read, the rest meets a closed pipe.
    assert_quiet(&["check", "-c", EXAMPLE], 8);
}

#[test]
fn sim_reshard_ends_quietly_in_every_format() {
    for format in ["table", "json", "csv"] {
        let args = [
            "sim",
            "reshard",
            "--keys",
            "2000",
            "--nodes",
            "4",
            "--grow-to",
            "8",
            "--no-timing",
            "--format",
            format,
        ];
        assert_quiet(&args, 0);
    }
}

#[test]
fn sim_reshard_still_writes_its_plot() {
    let dir = tempfile::tempdir().unwrap();
    let plot = dir.path().join("p.svg");
    let plot = plot.to_str().unwrap();
    let args = [
        "sim",
        "reshard",
        "--keys",
        "2000",
        "--nodes",
        "4",
        "--no-timing",
        "--plot",
        plot,
    ];
    assert_quiet(&args, 0);
    assert!(std::fs::read_to_string(plot).unwrap().starts_with("<svg"));
}

#[test]
fn sim_balance_ends_quietly_in_every_format() {
    for format in ["table", "json"] {
        assert_quiet(
            &["sim", "balance", "--duration", "1", "--format", format],
            0,
        );
    }
}

#[test]
fn id_ends_quietly() {
    // 100,000 IDs are about 2 MB, far more than a pipe holds: the writer meets the closed
    // pipe mid-stream after the reader took the first line.
    assert_quiet(
        &["id", "--count", "100000", "--worker", "1", "--no-state"],
        20,
    );
    assert_quiet(&["id", "--decode", "2127394777707057152"], 0);
}

#[test]
fn help_and_version_end_quietly() {
    assert_quiet(&["--help"], 0);
    assert_quiet(&["sim", "reshard", "--help"], 0);
    assert_quiet(&["--version"], 0);
}

/// The demo with stdout closed skips its banner and keeps serving; SIGTERM stops it cleanly.
#[test]
fn demo_keeps_serving_without_its_banner() {
    let home = tempfile::tempdir().unwrap();
    let mut child = spawn(
        &["demo", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"],
        home.path(),
    );
    drop(child.stdout.take());
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            all.push_str(&line);
            all.push('\n');
            let _ = tx.send(line);
        }
        all
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut ready = false;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) if line.contains("demo ready") => {
                ready = true;
                break;
            }
            Ok(_) => {}
            Err(_) => break, // the demo exited (stderr closed), or the deadline passed
        }
    }
    if ready {
        let pid = child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
    } else {
        let _ = child.kill();
    }
    let status = child.wait().unwrap();
    let stderr = reader.join().unwrap();
    assert!(
        ready,
        "the demo never got ready: {status}, stderr: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains("standard output is closed: the demo's banner is not shown"),
        "{stderr}"
    );
    assert_eq!(status.code(), Some(0), "{status}, stderr: {stderr}");
}
