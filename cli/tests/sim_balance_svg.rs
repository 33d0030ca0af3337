//! `ringleader sim balance --svg FILE`: the binary writes a well-formed SVG document with
//! one line per strategy in each panel, each named in a legend, beside its usual table.
use std::collections::HashSet;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_ringleader");

#[test]
fn sim_balance_writes_an_svg_with_a_series_per_strategy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("balance.svg");
    let strategies = ["round_robin", "least_connections", "power_of_two"];
    let out = Command::new(BIN)
        .args([
            "sim",
            "balance",
            "--scenario",
            "heterogeneous",
            "--duration",
            "2",
        ])
        .arg("--strategies")
        .arg(strategies.join(","))
        .arg("--svg")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The table still goes to stdout.
    let table = String::from_utf8(out.stdout).unwrap();
    for s in strategies {
        assert!(table.contains(s), "{table}");
    }

    let text = std::fs::read_to_string(&path).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("well-formed XML");
    let svg = doc.root_element();
    assert_eq!(svg.tag_name().name(), "svg");
    assert_eq!(
        svg.tag_name().namespace(),
        Some("http://www.w3.org/2000/svg")
    );
    // Every strategy named in both legends.
    let texts: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .collect();
    for s in strategies {
        assert_eq!(
            texts.iter().filter(|t| t.trim() == s).count(),
            2,
            "{s} in {texts:?}"
        );
    }
    // A data line per strategy and panel: polylines with 4 points (p50, p99, p99.9,
    // max) and 10 (one per backend), in a colour of their own per strategy.
    let lines: Vec<(String, usize)> = doc
        .descendants()
        .filter(|n| n.has_tag_name("polyline"))
        .filter_map(|n| {
            let points = n.attribute("points")?.split_whitespace().count();
            Some((n.attribute("stroke")?.to_string(), points))
        })
        .filter(|(_, points)| *points >= 3)
        .collect();
    let colours: HashSet<&str> = lines.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(colours.len(), strategies.len(), "{lines:?}");
    for points in [4, 10] {
        let n = lines.iter().filter(|(_, p)| *p == points).count();
        assert_eq!(n, strategies.len(), "{points} points: {lines:?}");
    }
}

#[test]
fn an_unwritable_svg_path_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-dir").join("balance.svg");
    let out = Command::new(BIN)
        .args(["sim", "balance", "--duration", "1", "--svg"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot write plot") && err.contains("no-such-dir"),
        "{err}"
    );
}
