//! Bad arguments exit with status 2 and a message naming the flag, whether clap or a
//! simulator's own check finds them; runtime failures keep status 1.
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_ringleader");

/// Exit status and stderr of `ringleader args...`.
fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("RINGLEADER_WORKER_ID")
        .env_remove("RINGLEADER_ETCD")
        .output()
        .expect("run the binary");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_arguments_exit_2_and_name_the_flag() {
    // (arguments, the flag the message must name, a word of the reason)
    let table: &[(&[&str], &str, &str)] = &[
        (&["sim", "reshard", "--nodes", "0"], "--nodes", "at least 1"),
        (&["sim", "reshard", "--nodes", "-1"], "--nodes", "-1"),
        (&["sim", "reshard", "--keys", "0"], "--keys", "1..="),
        (
            &["sim", "reshard", "--vnodes", "0"],
            "--vnodes",
            "at least 1",
        ),
        (&["sim", "reshard", "--slots", "0"], "--slots", "1..="),
        (
            &["sim", "reshard", "--ranges-per-node", "0"],
            "--ranges-per-node",
            "at least 1",
        ),
        (
            &["sim", "reshard", "--algorithms", "ring,chord"],
            "--algorithms",
            "chord",
        ),
        (
            &["sim", "reshard", "--distribution", "zipf:-1"],
            "--distribution",
            "zipf",
        ),
        (
            &["sim", "reshard", "--weight", "3=0"],
            "--weight",
            "at least 1",
        ),
        (
            &["sim", "reshard", "--keys", "1000", "--weight", "99=2"],
            "--weight",
            "node-99",
        ),
        (
            &["sim", "reshard", "--keys", "1000", "--grow-to", "5"],
            "--grow-to",
            "already has 10",
        ),
        (
            &["sim", "reshard", "--keys", "1000", "--shrink-to", "0"],
            "--shrink-to",
            "shrink to 0",
        ),
        (
            &["sim", "reshard", "--keys", "1000", "--remove", "10"],
            "--remove",
            "remove 10",
        ),
        (
            &["sim", "reshard", "--keys", "1000", "--add", "0"],
            "--add",
            "nothing to add",
        ),
        (
            &["sim", "reshard", "--from", "haproxy"],
            "--from",
            "haproxy",
        ),
        (
            &["sim", "reshard", "--from", "nginx", "--to", "chord"],
            "--to",
            "chord",
        ),
        (
            &["sim", "reshard", "--from", "nginx", "--add", "1"],
            "--from",
            "--add",
        ),
        (
            &["sim", "balance", "--duration", "0"],
            "--duration",
            "more than 0",
        ),
        (&["sim", "balance", "--duration", "-1"], "--duration", "-1"),
        (&["sim", "balance", "--format", "xml"], "--format", "xml"),
        (
            &["sim", "balance", "--scenario", "nope"],
            "--scenario",
            "nope",
        ),
        (
            &["sim", "balance", "--strategies", "nope"],
            "--strategies",
            "nope",
        ),
        (
            &["sim", "balance", "--duration", "1", "--bounded-load", "-1"],
            "--bounded-load",
            "greater than 0",
        ),
        (&["sim", "detect", "--hours", "0"], "--hours", "more than 0"),
        (&["sim", "detect", "--hours", "-1"], "--hours", "-1"),
        (
            &["sim", "detect", "--trials", "0"],
            "--trials",
            "1..=100000",
        ),
        (
            &["sim", "detect", "--trials", "100001"],
            "--trials",
            "1..=100000",
        ),
        (
            &["sim", "detect", "--trials", "99999999999"],
            "--trials",
            "99999999999",
        ),
        (&["sim", "detect", "--format", "xml"], "--format", "xml"),
        (
            &["sim", "detect", "--scenarios", "steady,nope"],
            "--scenarios",
            "nope",
        ),
        (
            &["sim", "detect", "--goal-scenario", "nope"],
            "--goal-scenario",
            "nope",
        ),
        (
            &["id", "--no-state", "--worker", "1024"],
            "--worker",
            "0..=1023",
        ),
        (
            &["id", "--no-state", "--layout", "js-safe", "--worker", "32"],
            "--worker",
            "0..=31",
        ),
        (&["id", "--no-state", "--worker", "-1"], "--worker", "-1"),
        (
            &["id", "--no-state", "--worker", "1", "--count", "-1"],
            "--count",
            "-1",
        ),
        (&["cluster", "ls"], "--etcd", "no etcd endpoint"),
        (
            &[
                "cluster",
                "register",
                "--etcd",
                "http://127.0.0.1:1",
                "--upstream",
                "app",
                "--addr",
                "nope",
            ],
            "--addr",
            "host:port",
        ),
        (
            &[
                "cluster",
                "register",
                "--etcd",
                "http://127.0.0.1:1",
                "--upstream",
                "a/b",
                "--addr",
                "127.0.0.1:80",
            ],
            "--upstream",
            "no '/'",
        ),
        (
            &[
                "cluster",
                "register",
                "--etcd",
                "http://127.0.0.1:1",
                "--upstream",
                "app",
                "--addr",
                "127.0.0.1:80",
                "--weight",
                "0",
            ],
            "--weight",
            "0",
        ),
    ];
    let mut wrong = Vec::new();
    for &(args, flag, reason) in table {
        let (code, stderr) = run(args);
        let label =
            stderr.contains("invalid balancer setting") || stderr.contains("unexpected argument");
        if code != Some(2) || !stderr.contains(flag) || !stderr.contains(reason) || label {
            wrong.push(format!("{args:?}: status {code:?}, stderr {stderr:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn runtime_failures_keep_status_1() {
    let dir = std::env::temp_dir().join(format!("ringleader-usage-{}", std::process::id()));
    let svg = dir.join("missing-dir").join("p.svg");
    let (code, stderr) = run(&[
        "sim",
        "balance",
        "--duration",
        "1",
        "--svg",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("cannot write plot"), "{stderr}");
    // A config file that is not there is not a bad argument either.
    let (code, stderr) = run(&["check", "-c", dir.join("none.toml").to_str().unwrap()]);
    assert_eq!(code, Some(1), "{stderr}");
}
