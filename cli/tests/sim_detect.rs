//! `ringleader sim detect` end to end, on a short run: the table has both detectors and the comparison, JSON parses, and the SVG is well-formed XML with a curve per detector.
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_ringleader");

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(["sim", "detect", "--hours", "0.25", "--trials", "16"])
        .args(args)
        .output()
        .expect("run the binary");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Check that `text` is well-formed XML as far as an SVG needs: every element
/// opened is closed in order, attributes are quoted, one root. Returns the element
/// names in document order.
fn well_formed(text: &str) -> Result<Vec<String>, String> {
    let mut stack: Vec<String> = Vec::new();
    let mut names = Vec::new();
    let mut rest = text.trim_start();
    let mut roots = 0;
    while let Some(lt) = rest.find('<') {
        if stack.is_empty() && !rest[..lt].trim().is_empty() {
            return Err(format!("text outside the root: {:?}", &rest[..lt]));
        }
        rest = &rest[lt..];
        if let Some(r) = rest.strip_prefix("<?") {
            let end = r.find("?>").ok_or("unterminated <?")?;
            rest = &r[end + 2..];
            continue;
        }
        if let Some(r) = rest.strip_prefix("<!--") {
            let end = r.find("-->").ok_or("unterminated comment")?;
            rest = &r[end + 3..];
            continue;
        }
        let gt = rest.find('>').ok_or("unterminated tag")?;
        let tag = &rest[1..gt];
        rest = &rest[gt + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            let open = stack
                .pop()
                .ok_or_else(|| format!("</{name}> closes nothing"))?;
            if open != name.trim() {
                return Err(format!("<{open}> closed by </{name}>"));
            }
            continue;
        }
        let self_closing = tag.ends_with('/');
        let body = tag.trim_end_matches('/');
        let name: String = body
            .split_whitespace()
            .next()
            .ok_or("empty tag")?
            .to_owned();
        if body.matches('"').count() % 2 != 0 {
            return Err(format!("unbalanced quotes in <{body}>"));
        }
        if stack.is_empty() {
            roots += 1;
        }
        names.push(name.clone());
        if !self_closing {
            stack.push(name);
        }
    }
    if !stack.is_empty() {
        return Err(format!("unclosed: {stack:?}"));
    }
    if roots != 1 {
        return Err(format!("{roots} root elements"));
    }
    Ok(names)
}

#[test]
fn the_xml_checker_rejects_broken_documents() {
    assert!(well_formed("<svg><g></g></svg>").is_ok());
    assert!(well_formed("<svg><g></svg>").is_err());
    assert!(well_formed("<svg><g/></svg><svg/>").is_err());
    assert!(well_formed("<svg><path d=\"M0/></svg>").is_err());
}

#[test]
fn table_has_both_detectors_and_the_comparison() {
    let (ok, out, err) = run(&["--scenarios", "steady,mixed"]);
    assert!(ok, "{err}");
    let rows = |detector: &str| {
        out.lines()
            .filter(|l| l.split_whitespace().nth(1) == Some(detector))
            .count()
    };
    assert!(rows("rise_fall") >= 12, "{out}");
    assert!(rows("accrual") >= 12, "{out}");
    assert!(out.contains("interval=2s fall=3 *"), "{out}");
    assert!(
        out.contains("goal on mixed: rise/fall defaults detect in"),
        "{out}"
    );
    assert!(out.contains("same false-down rate:") && out.contains("same detection time:"));
}

#[test]
fn json_and_svg() {
    let svg = std::env::temp_dir().join(format!("ringleader-detect-{}.svg", std::process::id()));
    let svg_arg = svg.to_str().unwrap();
    let (ok, out, err) = run(&["--scenarios", "gc", "--format", "json", "--svg", svg_arg]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let rows = v["rows"].as_array().unwrap();
    // The goal scenario (mixed) is added to the ones asked for.
    for scenario in ["gc", "mixed"] {
        for detector in ["rise_fall", "accrual"] {
            assert!(
                rows.iter()
                    .any(|r| r["scenario"] == scenario && r["detector"] == detector),
                "{scenario} {detector}"
            );
        }
    }
    assert!(v["goal"]["speedup"].is_number() || v["goal"]["speedup"].is_null());
    let text = std::fs::read_to_string(&svg).expect("the SVG was written");
    let _ = std::fs::remove_file(&svg);
    let names = well_formed(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(names.first().map(String::as_str), Some("svg"));
    // A line per curve: three rise/fall intervals, two accrual sweeps.
    let lines = names.iter().filter(|n| *n == "polyline").count();
    assert!(lines >= 5, "{lines} polylines");
    for legend in ["rise_fall 2s", "accrual phi", "accrual confirm"] {
        assert!(text.contains(legend), "no {legend} in the legend");
    }
    assert!(text.contains("default ("));
}

#[test]
fn bad_arguments_are_errors() {
    for args in [
        &["--format", "csv"][..],
        &["--scenarios", "moon"],
        &["--hours", "0"],
        &["--goal-scenario", "x"],
    ] {
        let (ok, _, err) = run(args);
        assert!(!ok, "{args:?} should fail");
        assert!(!err.is_empty());
    }
}

/// No crash trials leave nothing to time: `--trials 0` is a bad argument (status 2, named),
/// not a table of NaN; the simulator's errors are labelled by the flag, not by its field.
#[test]
fn zero_trials_is_refused_and_errors_name_the_flag() {
    for (args, flag) in [
        (&["--trials", "0"][..], "--trials"),
        (&["--hours", "0"], "--hours"),
        (&["--scenarios", "moon"], "--scenarios"),
        (&["--goal-scenario", "moon"], "--goal-scenario"),
    ] {
        let out = Command::new(BIN)
            .args(["sim", "detect"])
            .args(args)
            .output()
            .expect("run the binary");
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}{stdout}");
        assert!(!stdout.contains("NaN"), "{args:?}: {stdout}");
        assert!(
            stderr.contains(&format!("invalid {flag}: ")),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("balancer setting"), "{args:?}: {stderr}");
    }
}
