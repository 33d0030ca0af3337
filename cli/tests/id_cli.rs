//! `ringleader id` as a user runs it: a worker id is required, the high-water mark lives in
//! the state directory, parallel runs never print the same ID, and a second run with the
//! same worker id while one holds the mark is refused with the holder's pid.
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_ringleader");

/// A fresh directory for one test, removed on drop.
fn temp_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("ringleader-id-cli-{name}-"))
        .tempdir()
        .unwrap()
}

/// `ringleader id ARGS` with its state directory in `home` (never the real one) and no
/// worker id in the environment.
fn id_cmd(home: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("id")
        .args(args)
        .env_remove("RINGLEADER_WORKER_ID")
        .env("HOME", home)
        .env("XDG_STATE_HOME", home.join("state"));
    cmd
}

fn ids(out: &Output) -> Vec<u64> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.parse().unwrap())
        .collect()
}

#[test]
fn without_a_worker_id_it_refuses_instead_of_using_worker_0() {
    let home = temp_dir("noworker");
    let out = id_cmd(home.path(), &["--count", "3"]).output().unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "printed IDs anyway");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no worker id: pass --worker W or set RINGLEADER_WORKER_ID"),
        "{stderr}"
    );

    // The environment variable counts as a worker id.
    let out = id_cmd(home.path(), &["--count", "2"])
        .env("RINGLEADER_WORKER_ID", "12")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(ids(&out).len(), 2);
}

#[test]
fn sequential_runs_keep_a_mark_in_the_state_directory_and_never_repeat() {
    let home = temp_dir("sequential");
    let mut all = Vec::new();
    for _ in 0..3 {
        let out = id_cmd(home.path(), &["--worker", "7", "--count", "3000"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "quiet on success: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let run = ids(&out);
        assert_eq!(run.len(), 3000);
        if let Some(&last) = all.last() {
            assert!(
                run[0] > last,
                "a run started below the previous one's last ID"
            );
        }
        all.extend(run);
    }
    let mark = home
        .path()
        .join("state/ringleader/id-twitter-worker-7.mark");
    let text = std::fs::read_to_string(&mark).unwrap();
    assert!(text.contains("worker 7\n"), "{text}");
    assert!(home
        .path()
        .join("state/ringleader/id-twitter-worker-7.mark.lock")
        .exists());

    // --state puts it elsewhere; --no-state keeps none.
    let custom = home.path().join("custom.mark");
    let out = id_cmd(home.path(), &["--worker", "7", "--state"])
        .arg(&custom)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(custom.exists());
    let out = id_cmd(home.path(), &["--worker", "8", "--no-state"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!home
        .path()
        .join("state/ringleader/id-twitter-worker-8.mark")
        .exists());
}

#[test]
fn four_parallel_runs_print_no_id_twice() {
    let home = temp_dir("parallel");
    // Four workers at once (what the issue ran with worker 0 for all: 6,000 distinct of 8,000).
    let children: Vec<_> = (1..=4)
        .map(|w| {
            id_cmd(
                home.path(),
                &["--worker", &w.to_string(), "--count", "2000"],
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    let mut seen = HashSet::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        seen.extend(ids(&out));
    }
    assert_eq!(seen.len(), 8000);

    // Four at once with ONE worker id: whoever holds the mark prints; the others are
    // refused, and whatever was printed is still unique.
    let children: Vec<_> = (0..4)
        .map(|_| {
            id_cmd(home.path(), &["--worker", "5", "--count", "2000"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let (mut printed, mut seen) = (0, HashSet::new());
    for child in children {
        let out = child.wait_with_output().unwrap();
        let run = ids(&out);
        if out.status.success() {
            assert_eq!(run.len(), 2000);
        } else {
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.contains("in use by another generator"), "{stderr}");
            assert!(run.is_empty());
        }
        printed += run.len();
        seen.extend(run);
    }
    assert!(printed >= 2000, "at least one run got the mark");
    assert_eq!(
        seen.len(),
        printed,
        "duplicates among runs sharing worker 5"
    );
}

#[test]
fn a_second_run_with_the_same_worker_is_told_the_holders_pid() {
    let home = temp_dir("lock");
    let state = home.path().join("w3.mark");
    // The holder: far more IDs than a pipe holds, so it stalls on its unread stdout while
    // holding the mark.
    let mut holder = id_cmd(
        home.path(),
        &["--worker", "3", "--count", "100000000", "--state"],
    )
    .arg(&state)
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let mut lines = BufReader::new(holder.stdout.take().unwrap()).lines();
    let first: u64 = lines.next().unwrap().unwrap().parse().unwrap();

    let out = id_cmd(home.path(), &["--worker", "3", "--state"])
        .arg(&state)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "ran beside the holder");
    assert!(
        stderr.contains(&format!(
            "in use by another generator (held by process {})",
            holder.id()
        )),
        "{stderr}"
    );

    holder.kill().unwrap();
    holder.wait().unwrap();
    // Killed, it released the lock (the kernel's) without lowering its mark: the next run
    // waits out the holder's short reservation, then continues past everything it issued.
    let out = id_cmd(home.path(), &["--worker", "3", "--state"])
        .arg(&state)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(ids(&out)[0] > first);
}

/// `ringleader id --decode ID [--layout L]`: stdout and stderr (no colours: stderr is a pipe).
fn decode(home: &Path, id: &str, layout: Option<&str>) -> (String, String) {
    let mut args = vec!["--decode", id];
    if let Some(l) = layout {
        args.extend(["--layout", l]);
    }
    let out = id_cmd(home, &args).env_remove("RUST_LOG").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn decoding_with_the_wrong_layout_warns_and_names_the_right_one() {
    let home = temp_dir("decode");
    let out = id_cmd(
        home.path(),
        &["--layout", "js-safe", "--worker", "3", "--no-state"],
    )
    .output()
    .unwrap();
    let js_safe = ids(&out)[0].to_string();

    // Decoded with its own layout: a plausible time, no warning.
    let (stdout, stderr) = decode(home.path(), &js_safe, Some("js-safe"));
    assert!(stdout.contains("worker    3\n"), "{stdout}");
    assert!(!stderr.contains("WARN"), "{stderr}");

    // Decoded with the default (Twitter) layout: November 2010, a few days after the
    // Twitter epoch. The output is still printed; the warning names --layout js-safe.
    let (stdout, stderr) = decode(home.path(), &js_safe, None);
    assert!(stdout.contains("time      2010-11-"), "{stdout}");
    assert!(stderr.contains("WARN"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{js_safe} decodes with the twitter layout to 2010-11-"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("within 90 days of the layout's epoch"),
        "{stderr}"
    );
    assert!(
        stderr.contains("--layout js-safe decodes it to "),
        "{stderr}"
    );
    assert!(!stderr.contains("--layout sonyflake"), "{stderr}");

    // A Twitter ID read as Sonyflake lands decades ahead.
    let out = id_cmd(home.path(), &["--worker", "3", "--no-state"])
        .output()
        .unwrap();
    let twitter = ids(&out)[0].to_string();
    let (_, stderr) = decode(home.path(), &twitter, None);
    assert!(!stderr.contains("WARN"), "{stderr}");
    let (_, stderr) = decode(home.path(), &twitter, Some("sonyflake"));
    assert!(stderr.contains("in the future"), "{stderr}");
    assert!(
        stderr.contains("--layout twitter decodes it to "),
        "{stderr}"
    );
}
