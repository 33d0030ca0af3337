//! `ringleader id`: generate Snowflake IDs, or decode one into time, worker and sequence.
//!
//! Generating needs a worker id (`--worker` or `RINGLEADER_WORKER_ID`; never a silent 0)
//! and keeps a high-water mark per layout and worker in the user's state directory, locked
//! while the command runs, so runs with one worker id never repeat an ID, even across a
//! backwards clock step, and two at once are refused instead of duplicating. With `--etcd`
//! the worker id is leased from etcd for the run instead (see [`leased`]).
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use ringleader_idgen::{Clock, Generator, Id, Layout, SystemClock, WorkerId, WORKER_ID_ENV};

use crate::cluster::EtcdArgs;
use crate::CliError;

pub mod leased;

/// How far ahead each mark write reserves. A run that ends normally lowers the mark to its
/// last ID; one that is killed leaves this much for the next run to wait out.
const RESERVE_AHEAD: Duration = Duration::from_millis(500);

/// Arguments of `ringleader id`.
// The field docs are clap's help text, where `<state dir>` and `<W>` are placeholders, not HTML.
#[allow(rustdoc::invalid_html_tags)]
#[derive(Debug, clap::Args)]
pub struct IdArgs {
    /// How many IDs to print, one per line.
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    pub count: u64,
    /// Worker id stamped into the IDs [default: $RINGLEADER_WORKER_ID]. Required unless
    /// --etcd leases one: processes issuing IDs at the same time need distinct worker ids,
    /// or their IDs collide.
    #[arg(long, conflicts_with_all = ["etcd", "namespace"], allow_negative_numbers = true)]
    pub worker: Option<u32>,
    /// With --etcd: lease a free worker id from etcd for the run (released at the end, so
    /// parallel runs never print the same ID); no --worker and no high-water file.
    #[command(flatten)]
    pub cluster: EtcdArgs,
    /// With --etcd: how long to wait for IDs while the lease is not confirmed (etcd
    /// unreachable) before giving up with an error.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    pub wait: Duration,
    /// Decode this ID instead of generating: prints its time (RFC 3339), worker and sequence.
    /// Warns on stderr when the time is implausible for --layout (in the future, or within 90
    /// days of the layout's epoch), naming the layouts that decode it to a plausible time.
    #[arg(long, value_name = "ID", conflicts_with_all = ["count", "worker", "state", "no_state", "etcd", "namespace"])]
    pub decode: Option<Id>,
    /// Bit layout of the IDs.
    #[arg(long, value_enum, default_value_t = LayoutName::Twitter)]
    pub layout: LayoutName,
    /// High-water-mark file, locked while the command runs
    /// [default: <state dir>/ringleader/id-<layout>-worker-<W>.mark, the state dir being
    /// $XDG_STATE_HOME or ~/.local/state on Linux, the local data dir elsewhere].
    #[arg(long, value_name = "FILE", conflicts_with_all = ["no_state", "etcd"])]
    pub state: Option<PathBuf>,
    /// Keep no high-water mark (read-only or throw-away environments): a run after a
    /// backwards clock step can then repeat IDs of an earlier run with the same worker id,
    /// and nothing stops two runs with one worker id at once.
    #[arg(long, conflicts_with = "etcd")]
    pub no_state: bool,
}

/// The layout presets selectable on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LayoutName {
    /// 41 bits of ms since 2010-11-04, 10 worker bits, 12 sequence bits.
    Twitter,
    /// 39 bits of 10 ms since 2014-09-01, 16 worker bits, 8 sequence bits.
    Sonyflake,
    /// IDs below 2^53: 41 bits of ms since 2024-01-01, 5 worker bits, 7 sequence bits.
    JsSafe,
}

impl LayoutName {
    /// The library layout.
    pub fn layout(self) -> Layout {
        match self {
            LayoutName::Twitter => Layout::TWITTER,
            LayoutName::Sonyflake => Layout::SONYFLAKE,
            LayoutName::JsSafe => Layout::JS_SAFE,
        }
    }

    /// The name on the command line (and in the default mark file's name).
    pub fn name(self) -> &'static str {
        match self {
            LayoutName::Twitter => "twitter",
            LayoutName::Sonyflake => "sonyflake",
            LayoutName::JsSafe => "js-safe",
        }
    }
}

/// Run `ringleader id`.
pub fn run(args: IdArgs) -> Result<(), CliError> {
    // `ringleader id --count 1000000 | head` ends quietly: see `crate::out`.
    crate::out::stdout(|out| run_to(&args, out))
}

/// `ringleader id` writing to `out` instead of stdout.
pub fn run_to(args: &IdArgs, out: &mut dyn Write) -> Result<(), CliError> {
    if let Some(id) = args.decode {
        decode(args.layout, id, out)?;
        if let Some(warning) = implausible_warning(args.layout, id, SystemTime::now()) {
            tracing::warn!("{warning}");
        }
        return Ok(());
    }
    if leases_from_etcd(args) {
        return leased::generate(args, out);
    }
    generate(args, SystemClock, out)
}

/// Whether the worker id comes from etcd: `--etcd` given, or neither `--worker` nor
/// `RINGLEADER_WORKER_ID` but `RINGLEADER_ETCD` set.
fn leases_from_etcd(args: &IdArgs) -> bool {
    if !args.cluster.etcd.is_empty() {
        return true;
    }
    let worker_env = std::env::var_os(WORKER_ID_ENV).is_some_and(|v| !v.is_empty());
    args.worker.is_none() && !worker_env && args.cluster.given()
}

/// The worker id from `--worker`, else `RINGLEADER_WORKER_ID`; an error when neither is given.
fn worker(args: &IdArgs) -> Result<WorkerId, CliError> {
    match args.worker {
        Some(w) if w > args.layout.layout().max_worker() => Err(crate::usage(
            "--worker",
            format!(
                "{w} is out of range: --layout {} allows 0..={}",
                args.layout.name(),
                args.layout.layout().max_worker()
            ),
        )),
        Some(w) => Ok(WorkerId::new(w)),
        None => WorkerId::from_env_if_set()?.ok_or_else(|| {
            format!(
                "no worker id: pass --worker W or set {WORKER_ID_ENV}, or lease one from etcd \
                 with --etcd URL; processes issuing IDs at the same time need distinct worker \
                 ids, or their IDs collide"
            )
            .into()
        }),
    }
}

/// Where the high-water mark lives (`None` with `--no-state`); creates the default directory.
fn mark_path(args: &IdArgs, worker: WorkerId) -> Result<Option<PathBuf>, CliError> {
    if args.no_state {
        return Ok(None);
    }
    if let Some(path) = &args.state {
        return Ok(Some(path.clone()));
    }
    let dir = dirs::state_dir()
        .or_else(dirs::data_local_dir)
        .ok_or("no state directory for the ID high-water mark (no home directory?): pass --state FILE, or --no-state")?
        .join("ringleader");
    std::fs::create_dir_all(&dir).map_err(|e| {
        format!(
            "cannot create {} for the ID high-water mark: {e}",
            dir.display()
        )
    })?;
    Ok(Some(dir.join(format!(
        "id-{}-worker-{worker}.mark",
        args.layout.name()
    ))))
}

/// Generate `args.count` IDs on `clock` (the system clock, or a test's).
fn generate<C: Clock>(args: &IdArgs, clock: C, out: &mut dyn Write) -> Result<(), CliError> {
    let worker = worker(args)?;
    let mut builder = Generator::builder(args.layout.layout()).clock(clock);
    if let Some(path) = mark_path(args, worker)? {
        builder = builder.high_water_mark(path).reserve_ahead(RESERVE_AHEAD);
    }
    let gen = builder.build(worker)?;
    let mut left = args.count;
    while left > 0 {
        let n = left.min(gen.max_batch());
        for id in gen.next_ids(n)? {
            writeln!(out, "{id}")?;
        }
        left -= n;
    }
    Ok(())
}

/// RFC 3339 text of a decoded time: every preset ticks in whole milliseconds; finer ticks
/// get nanoseconds.
fn rfc3339(layout: Layout, time: SystemTime) -> String {
    if layout.tick() >= Duration::from_millis(1) {
        humantime::format_rfc3339_millis(time).to_string()
    } else {
        humantime::format_rfc3339_nanos(time).to_string()
    }
}

fn decode(name: LayoutName, id: Id, out: &mut dyn Write) -> Result<(), CliError> {
    let layout = name.layout();
    let parts = layout
        .decode(id)
        .map_err(|e| format!("{id} is not an ID of layout {layout}: {e}"))?;
    let time = rfc3339(layout, layout.time_of(parts.timestamp)?);
    writeln!(out, "id        {id}")?;
    writeln!(out, "time      {time}")?;
    writeln!(out, "worker    {}", parts.worker)?;
    writeln!(out, "sequence  {}", parts.sequence)?;
    writeln!(
        out,
        "timestamp {} (ticks of {:?} since the layout's epoch)",
        parts.timestamp,
        layout.tick()
    )?;
    writeln!(out, "layout    {layout}")?;
    Ok(())
}

/// How far ahead of this machine's clock a decoded time may be and still count as
/// plausible: the machine that issued the ID may have a clock that runs a little ahead.
pub const FUTURE_SKEW: Duration = Duration::from_secs(5 * 60);

/// A decoded time this soon after its layout's epoch is implausible: it is where an ID of a
/// narrower layout lands. A JS-safe ID (below 2^53) read as Twitter decodes to at most
/// 2^31 ms (25 days) after the Twitter epoch, read as Sonyflake to at most 2^29 ticks of
/// 10 ms (62 days) after the Sonyflake epoch; small numbers decode to the epoch itself.
pub const NEAR_EPOCH: Duration = Duration::from_secs(90 * 24 * 3600);

/// Every preset, in the order `--help` lists them.
const PRESETS: [LayoutName; 3] = [
    LayoutName::Twitter,
    LayoutName::Sonyflake,
    LayoutName::JsSafe,
];

/// Why a decoded time cannot be right for its layout, at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Implausible {
    /// Later than now plus [`FUTURE_SKEW`].
    Future,
    /// Within [`NEAR_EPOCH`] of the layout's epoch.
    NearEpoch,
}

/// Whether `time`, decoded with `layout`, is implausible at `now`.
pub fn implausible(layout: Layout, time: SystemTime, now: SystemTime) -> Option<Implausible> {
    if time > now + FUTURE_SKEW {
        Some(Implausible::Future)
    } else if time < layout.epoch() + NEAR_EPOCH {
        Some(Implausible::NearEpoch)
    } else {
        None
    }
}

/// The time `id` decodes to with `name`'s layout, if it decodes to a plausible one at `now`.
fn plausible_time(name: LayoutName, id: Id, now: SystemTime) -> Option<SystemTime> {
    let layout = name.layout();
    let time = layout.time_of(layout.decode(id).ok()?.timestamp).ok()?;
    implausible(layout, time, now).is_none().then_some(time)
}

/// The warning `ringleader id --decode` prints (on stderr) when `id` decodes with `name`'s
/// layout to an implausible time at `now`, naming the layouts that decode it plausibly.
pub fn implausible_warning(name: LayoutName, id: Id, now: SystemTime) -> Option<String> {
    let layout = name.layout();
    let time = layout.time_of(layout.decode(id).ok()?.timestamp).ok()?;
    let why = match implausible(layout, time, now)? {
        Implausible::Future => format!(
            "in the future (more than {} ahead of this clock)",
            humantime::format_duration(FUTURE_SKEW)
        ),
        Implausible::NearEpoch => format!(
            "within {} days of the layout's epoch {}",
            NEAR_EPOCH.as_secs() / 86_400,
            humantime::format_rfc3339_seconds(layout.epoch())
        ),
    };
    let mut msg = format!(
        "{id} decodes with the {} layout to {}, {why}: is it an ID of another layout?",
        name.name(),
        rfc3339(layout, time)
    );
    let others: Vec<String> = PRESETS
        .iter()
        .filter(|&&other| other != name)
        .filter_map(|&other| {
            let t = plausible_time(other, id, now)?;
            Some(format!(
                "--layout {} decodes it to {}",
                other.name(),
                rfc3339(other.layout(), t)
            ))
        })
        .collect();
    if others.is_empty() {
        msg += " No other preset (--layout twitter | sonyflake | js-safe) decodes it to a plausible time either.";
    } else {
        msg += &format!(" {}.", others.join("; "));
    }
    Some(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use ringleader_idgen::ManualClock;

    #[derive(Debug, Parser)]
    struct Cmd {
        #[command(flatten)]
        args: IdArgs,
    }

    fn parse(argv: &[&str]) -> Result<IdArgs, clap::Error> {
        Cmd::try_parse_from(std::iter::once("id").chain(argv.iter().copied())).map(|c| c.args)
    }

    fn output(argv: &[&str]) -> Result<String, CliError> {
        let args = parse(argv)?;
        let mut buf = Vec::new();
        run_to(&args, &mut buf)?;
        Ok(String::from_utf8(buf)?)
    }

    fn ids_on(clock: &ManualClock, argv: &[&str]) -> Result<Vec<Id>, CliError> {
        let args = parse(argv)?;
        let mut buf = Vec::new();
        generate(&args, clock.clone(), &mut buf)?;
        Ok(String::from_utf8(buf)?
            .lines()
            .map(|l| l.parse().unwrap())
            .collect())
    }

    /// A fresh directory for one test, removed on drop.
    fn temp_dir(name: &str) -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix(&format!("ringleader-cli-id-{name}-"))
            .tempdir()
            .unwrap()
    }

    #[test]
    fn sequential_runs_with_one_worker_never_repeat_even_after_a_clock_step() {
        let dir = temp_dir("sequential");
        let state = dir.path().join("w5.mark");
        let state = state.to_str().unwrap();
        let clock = ManualClock::new();
        let argv = ["--count", "5000", "--worker", "5", "--state", state];
        let first = ids_on(&clock, &argv).unwrap();
        // The next run starts 300 ms earlier by the clock (an NTP step back).
        clock.set_back(Duration::from_millis(300));
        let second = ids_on(&clock, &argv).unwrap();
        assert_eq!((first.len(), second.len()), (5000, 5000));
        assert!(
            second[0] > first[4999],
            "second run restarted at {:?}, first ended at {:?}",
            Layout::TWITTER.decode(second[0]).unwrap(),
            Layout::TWITTER.decode(first[4999]).unwrap()
        );
        assert!(second.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn state_flags() {
        assert!(parse(&["--state", "x", "--no-state"]).is_err());
        assert!(parse(&["--decode", "1", "--state", "x"]).is_err());
        assert!(parse(&["--decode", "1", "--no-state"]).is_err());
        let dir = temp_dir("flags");
        let state = dir.path().join("mine.mark");
        let args = parse(&["--worker", "2", "--state", state.to_str().unwrap()]).unwrap();
        assert_eq!(mark_path(&args, WorkerId::new(2)).unwrap(), Some(state));
        let args = parse(&["--worker", "2", "--no-state"]).unwrap();
        assert_eq!(mark_path(&args, WorkerId::new(2)).unwrap(), None);
    }

    #[test]
    fn generates_count_unique_increasing_ids_for_the_worker() {
        // 10,000 > one batch of 4096, so several reservations are stitched together.
        let text = output(&["--count", "10000", "--worker", "513", "--no-state"]).unwrap();
        let ids: Vec<Id> = text.lines().map(|l| l.parse().unwrap()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert!(ids
            .iter()
            .all(|id| Layout::TWITTER.decode(*id).unwrap().worker == 513));
    }

    #[test]
    fn decode_prints_rfc3339_time_worker_and_sequence() {
        let layout = Layout::TWITTER;
        // 2022-06-28T16:07:40.105Z in ms since the Twitter epoch.
        let ts = 1_656_432_460_105 - 1_288_834_974_657;
        let id = layout.compose(ts, 7, 42).unwrap();
        let text = output(&["--decode", &id.to_string()]).unwrap();
        assert!(
            text.contains("time      2022-06-28T16:07:40.105Z"),
            "{text}"
        );
        assert!(text.contains("worker    7\n"), "{text}");
        assert!(text.contains("sequence  42\n"), "{text}");
    }

    #[test]
    fn other_layouts() {
        let text = output(&[
            "--layout",
            "js-safe",
            "--count",
            "3",
            "--worker",
            "31",
            "--no-state",
        ])
        .unwrap();
        for line in text.lines() {
            let id: Id = line.parse().unwrap();
            assert!(id.as_u64() < 1 << 53);
        }
        let id = Layout::SONYFLAKE.compose(100, 65_535, 255).unwrap();
        let text = output(&["--layout", "sonyflake", "--decode", &id.to_string()]).unwrap();
        assert!(
            text.contains("time      2014-09-01T00:00:01.000Z"),
            "{text}"
        );
        assert!(text.contains("worker    65535"), "{text}");
    }

    /// 2026-11-30T12:00:00Z, the "now" of the plausibility tests.
    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_040_000)
    }

    fn id_at(name: LayoutName, time: SystemTime) -> Id {
        let layout = name.layout();
        let ticks =
            time.duration_since(layout.epoch()).unwrap().as_nanos() / layout.tick().as_nanos();
        layout.compose(ticks as u64, 1, 2).unwrap()
    }

    #[test]
    fn plausible_times_are_between_90_days_after_the_epoch_and_5_minutes_ahead() {
        let layout = Layout::TWITTER;
        let now = now();
        assert_eq!(implausible(layout, now, now), None);
        assert_eq!(implausible(layout, now + FUTURE_SKEW, now), None);
        assert_eq!(
            implausible(layout, now + FUTURE_SKEW + Duration::from_secs(1), now),
            Some(Implausible::Future)
        );
        assert_eq!(implausible(layout, layout.epoch() + NEAR_EPOCH, now), None);
        assert_eq!(
            implausible(layout, layout.epoch() + Duration::from_secs(86_400), now),
            Some(Implausible::NearEpoch)
        );
    }

    #[test]
    fn the_warning_names_the_layouts_that_decode_an_id_plausibly() {
        let now = now();
        // An ID issued a minute ago decodes plausibly with its own layout: no warning.
        for name in PRESETS {
            let id = id_at(name, now - Duration::from_secs(60));
            assert_eq!(implausible_warning(name, id, now), None, "{name:?}");
        }
        // A JS-safe ID read as Twitter or Sonyflake: near their epochs; js-safe is named.
        let js = id_at(LayoutName::JsSafe, now - Duration::from_secs(60));
        for wrong in [LayoutName::Twitter, LayoutName::Sonyflake] {
            let w = implausible_warning(wrong, js, now).unwrap();
            assert!(w.contains("within 90 days of the layout's epoch"), "{w}");
            assert!(
                w.ends_with(" --layout js-safe decodes it to 2026-11-30T11:59:00.000Z."),
                "{w}"
            );
        }
        // A Twitter ID read as Sonyflake: the future; twitter is named.
        let tw = id_at(LayoutName::Twitter, now - Duration::from_secs(60));
        let w = implausible_warning(LayoutName::Sonyflake, tw, now).unwrap();
        assert!(
            w.contains("in the future (more than 5m ahead of this clock)"),
            "{w}"
        );
        assert!(
            w.ends_with(" --layout twitter decodes it to 2026-11-30T11:59:00.000Z."),
            "{w}"
        );
        // Nothing plausible anywhere: said so.
        let w = implausible_warning(LayoutName::Twitter, Id::try_from(1u64).unwrap(), now).unwrap();
        assert!(w.contains("No other preset"), "{w}");
    }

    #[test]
    fn etcd_excludes_a_fixed_worker_and_the_mark_file() {
        for argv in [
            &["--worker", "3", "--etcd", "http://127.0.0.1:2379"][..],
            &["--worker", "3", "--namespace", "prod"],
            &["--etcd", "127.0.0.1:2379", "--state", "x.mark"],
            &["--etcd", "127.0.0.1:2379", "--no-state"],
            &["--etcd", "127.0.0.1:2379", "--decode", "1"],
        ] {
            assert!(parse(argv).is_err(), "{argv:?} was accepted");
        }
        let args = parse(&[
            "--etcd",
            "10.0.0.1:2379,http://10.0.0.2:2379",
            "--etcd",
            "10.0.0.3:2379",
        ])
        .unwrap();
        assert!(leases_from_etcd(&args));
        assert_eq!(
            args.cluster.endpoints().unwrap(),
            [
                "http://10.0.0.1:2379",
                "http://10.0.0.2:2379",
                "http://10.0.0.3:2379"
            ]
        );
        assert_eq!(args.wait, Duration::from_secs(30));
        assert!(!leases_from_etcd(&parse(&["--worker", "3"]).unwrap()));
    }

    #[test]
    fn bad_input_is_a_clear_error() {
        let err = parse(&["--decode", "12abc"]).unwrap_err().to_string();
        assert!(err.contains("invalid ID"), "{err}");
        let err = output(&["--worker", "1024", "--no-state"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "invalid --worker: 1024 is out of range: --layout twitter allows 0..=1023"
            ),
            "{err}"
        );
        let err = output(&["--layout", "js-safe", "--decode", "9007199254740992"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("not an ID of layout"), "{err}");
        assert!(parse(&["--decode", "1", "--count", "3"]).is_err());
    }
}
