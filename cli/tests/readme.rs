//! The README as a user reads it: its annotated config is `examples/ringleader.toml`
//! and the proxy parses it, its install line names the package that holds the binary,
//! its links and those of `docs/` lead somewhere, and it stays a guide, not a journal.
use std::collections::HashSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(rel: &str) -> String {
    let path = root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The text between the `<!-- open -->` and `<!-- close -->` lines, without the
/// code fence around it.
fn marked_block(text: &str, open: &str, close: &str) -> String {
    let start = text
        .find(open)
        .unwrap_or_else(|| panic!("README has no {open} marker"));
    let rest = &text[start + open.len()..];
    let end = rest
        .find(close)
        .unwrap_or_else(|| panic!("README has no {close} after {open}"));
    let body = rest[..end].trim();
    let body = body
        .strip_prefix("```toml\n")
        .or_else(|| body.strip_prefix("```sh\n"))
        .unwrap_or_else(|| panic!("{open}: no ```toml or ```sh fence right after the marker"));
    let body = body
        .strip_suffix("```")
        .unwrap_or_else(|| panic!("{open}: the block does not end with a fence"));
    body.to_string()
}

#[test]
fn the_readme_config_is_the_example_file_and_parses() {
    let readme = read("README.md");
    let block = marked_block(
        &readme,
        "<!-- config: examples/ringleader.toml -->",
        "<!-- /config -->",
    );
    let example = read("examples/ringleader.toml");
    assert!(
        block == example,
        "the README's annotated config differs from examples/ringleader.toml; \
         first differing line: {:?}",
        block
            .lines()
            .zip(example.lines())
            .find(|(a, b)| a != b)
            .or(Some(("(length differs)", "")))
    );

    let cfg = ringleader_proxy::Config::from_toml_str(&block, "README.md")
        .unwrap_or_else(|e| panic!("the README's config does not parse: {e}"));
    assert_eq!(cfg.routes.len(), 2);
    assert_eq!(cfg.upstreams.len(), 2);
    // Any plain web server answers "/" (`python3 -m http.server` answers 404 on
    // /healthz, which would mark every backend down).
    let health = cfg.upstreams["app"]
        .health
        .as_ref()
        .expect("the example shows active health checks");
    assert_eq!(health.path, "/");
}

/// Values the example's comments call defaults are the proxy's defaults: a config that
/// leaves out every line not marked as an example choice resolves to the same settings.
#[test]
fn the_example_marks_its_non_default_values() {
    let example = read("examples/ringleader.toml");
    let cfg = ringleader_proxy::Config::from_toml_str(&example, "example").unwrap();
    let minimal = ringleader_proxy::Config::from_toml_str(
        "[upstream.app]\nbackends = [{ addr = \"127.0.0.1:9101\" }]\n[upstream.app.health]\n",
        "minimal",
    )
    .unwrap();
    let (s, d) = (&cfg.server, &minimal.server);
    assert_eq!(
        (
            s.listen,
            s.admin,
            s.workers,
            s.max_header_bytes,
            s.max_connections
        ),
        (
            d.listen,
            d.admin,
            d.workers,
            d.max_header_bytes,
            d.max_connections
        )
    );
    assert_eq!(
        (
            s.header_read_timeout,
            s.request_timeout,
            s.shutdown_grace,
            s.access_log
        ),
        (
            d.header_read_timeout,
            d.request_timeout,
            d.shutdown_grace,
            d.access_log
        )
    );
    let (a, m) = (&cfg.upstreams["app"], &minimal.upstreams["app"]);
    assert_eq!(
        (a.connect_timeout, a.idle_timeout),
        (m.connect_timeout, m.idle_timeout)
    );
    let (h, hd) = (a.health.as_ref().unwrap(), m.health.as_ref().unwrap());
    assert_eq!(
        (&h.path, h.interval, h.timeout, h.rise, h.fall),
        (&hd.path, hd.interval, hd.timeout, hd.rise, hd.fall)
    );
    let (p, pd) = (&a.passive, &m.passive);
    assert_eq!(
        (
            p.consecutive_failures,
            p.ejection_time,
            p.max_ejection_time,
            p.max_ejection_percent,
            p.panic_mode
        ),
        (
            pd.consecutive_failures,
            pd.ejection_time,
            pd.max_ejection_time,
            pd.max_ejection_percent,
            pd.panic_mode
        )
    );
    let (r, rd) = (&a.retry, &m.retry);
    assert_eq!(
        (r.attempts, r.budget_percent, r.max_body_bytes),
        (rd.attempts, rd.budget_percent, rd.max_body_bytes)
    );
    // The lines that differ from the defaults say so in their comment.
    for (line, key) in [
        ("on = [\"connect_error\", \"timeout\", \"5xx\"]", "on"),
        ("hash_key = \"header:x-user-id\"", "hash_key"),
    ] {
        let found = example
            .lines()
            .find(|l| l.starts_with(line))
            .unwrap_or_else(|| panic!("example has no line {line:?}"));
        assert!(
            found.contains("# default: "),
            "{key}: a non-default value without its default in the comment: {found:?}"
        );
    }
    assert_ne!(r.on, rd.on);
}

#[test]
fn the_install_line_names_the_package_with_the_binary() {
    let readme = read("README.md");
    let block = marked_block(
        &readme,
        "<!-- first-hour: install -->",
        "<!-- /first-hour: install -->",
    );
    let line = block
        .lines()
        .find(|l| l.starts_with("cargo install"))
        .expect("the install block has a `cargo install` line");
    let words: Vec<&str> = line.split('#').next().unwrap().split_whitespace().collect();
    let path = words
        .iter()
        .position(|w| *w == "--path")
        .map(|i| words[i + 1])
        .expect("cargo install --path DIR");
    let manifest = read(&format!("{path}/Cargo.toml"));
    assert!(
        manifest.contains("[[bin]]\nname = \"ringleader\""),
        "`{line}` installs {path}/, which has no `ringleader` binary"
    );
    let check = marked_block(
        &readme,
        "<!-- first-hour: check -->",
        "<!-- /first-hour: check -->",
    );
    assert!(check.contains("ringleader check -c examples/ringleader.toml"));
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a markdown file's headings (outside code blocks).
fn anchors(text: &str) -> HashSet<String> {
    let mut out = HashSet::new();
    let mut in_code = false;
    for line in text.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code || !line.starts_with('#') {
            continue;
        }
        let base = slug(line.trim_start_matches('#'));
        let mut anchor = base.clone();
        let mut n = 0;
        while !out.insert(anchor.clone()) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
    }
    out
}

/// Every `](target)` outside code blocks.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_code = false;
    for line in text.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let Some(end) = after.find(')') else { break };
            out.push(after[..end].to_string());
            rest = &after[end..];
        }
    }
    out
}

#[test]
fn links_in_the_readme_and_docs_lead_somewhere() {
    let mut files = vec!["README.md".to_string()];
    let docs = root().join("docs");
    for entry in std::fs::read_dir(&docs).expect("docs/ exists") {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".md") {
            files.push(format!("docs/{name}"));
        }
    }
    assert!(files.contains(&"docs/benchmarks.md".to_string()));
    let mut broken = Vec::new();
    for file in &files {
        let text = read(file);
        let dir = Path::new(file).parent().unwrap();
        for link in links(&text) {
            if link.starts_with("http://") || link.starts_with("https://") {
                continue;
            }
            let (target, anchor) = match link.split_once('#') {
                Some((t, a)) => (t, Some(a)),
                None => (link.as_str(), None),
            };
            let target_rel = if target.is_empty() {
                PathBuf::from(file)
            } else {
                dir.join(target)
            };
            let target_path = root().join(&target_rel);
            if !target_path.exists() {
                broken.push(format!("{file}: {link} (no such file)"));
                continue;
            }
            if let Some(anchor) = anchor {
                let text = std::fs::read_to_string(&target_path).unwrap();
                if !anchors(&text).contains(anchor) {
                    broken.push(format!("{file}: {link} (no such heading)"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_readme_is_a_guide_with_contents_not_a_journal() {
    let readme = read("README.md");
    let lines = readme.lines().count();
    // "About 400 lines" (the brief of issue #13), with the fleet and edge-protocol
    // sections issues #14 and #15 ask the README itself to carry.
    assert!(
        lines <= 440,
        "README.md has {lines} lines; keep it a guide and move detail to docs/"
    );
    // A table of contents near the top, linking to every second-level section.
    let head: String = readme.lines().take(25).collect::<Vec<_>>().join("\n");
    let mut in_code = false;
    for line in readme.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        }
        if !in_code && line.starts_with("## ") {
            let anchor = format!("(#{})", slug(&line[3..]));
            assert!(
                head.contains(&anchor),
                "the table of contents has no {anchor}"
            );
        }
    }
    for phrase in ["this round", "previous round", "before this change"] {
        assert!(
            !readme.contains(phrase),
            "README reads as a journal: {phrase:?}"
        );
    }
}

#[test]
fn slugs_follow_github() {
    assert_eq!(slug(" IDs: idgen"), "ids-idgen");
    assert_eq!(
        slug("Old binary against new (the redesign)"),
        "old-binary-against-new-the-redesign"
    );
    assert_eq!(
        slug("`ringleader id` and --decode"),
        "ringleader-id-and---decode"
    );
    let a = anchors("# A\n```sh\n# not a heading\n```\n## A\n");
    assert!(a.contains("a") && a.contains("a-1") && !a.contains("not-a-heading"));
}

#[test]
fn every_example_config_parses() {
    let dir = root().join("examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("examples/") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            ringleader_proxy::Config::load(&path)
                .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
            seen += 1;
        }
    }
    assert!(
        seen >= 2,
        "expected examples/ringleader.toml and examples/fleet.toml"
    );
}
