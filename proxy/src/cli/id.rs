//! `ringleader id`: generate Snowflake IDs, or decode one into time, worker and sequence.
use std::io::{self, BufWriter, Write};
use std::time::Duration;

use ringleader_idgen::{Generator, Id, Layout, WorkerId, WORKER_ID_ENV};

use super::CliError;

/// Arguments of `ringleader id`.
#[derive(Debug, clap::Args)]
pub struct IdArgs {
    /// How many IDs to print, one per line.
    #[arg(long, default_value_t = 1)]
    pub count: u64,
    /// Worker id stamped into the IDs [default: $RINGLEADER_WORKER_ID, else 0].
    #[arg(long)]
    pub worker: Option<u32>,
    /// Decode this ID instead of generating: prints its time (RFC 3339), worker and sequence.
    #[arg(long, value_name = "ID", conflicts_with_all = ["count", "worker"])]
    pub decode: Option<Id>,
    /// Bit layout of the IDs.
    #[arg(long, value_enum, default_value_t = LayoutName::Twitter)]
    pub layout: LayoutName,
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
}

/// Run `ringleader id`.
pub fn run(args: IdArgs) -> Result<(), CliError> {
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    match run_to(&args, &mut out).and_then(|()| out.flush().map_err(Into::into)) {
        Err(e) if is_broken_pipe(&*e) => Ok(()), // `ringleader id --count 1000000 | head`
        other => other,
    }
}

fn is_broken_pipe(e: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    e.downcast_ref::<io::Error>()
        .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

/// `ringleader id` writing to `out` instead of stdout.
pub fn run_to(args: &IdArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let layout = args.layout.layout();
    if let Some(id) = args.decode {
        return decode(layout, id, out);
    }
    let worker = match args.worker {
        Some(w) => WorkerId::new(w),
        None if std::env::var_os(WORKER_ID_ENV).is_some() => WorkerId::from_env()?,
        None => WorkerId::new(0),
    };
    let gen = Generator::new(layout, worker)?;
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

fn decode(layout: Layout, id: Id, out: &mut dyn Write) -> Result<(), CliError> {
    let parts = layout
        .decode(id)
        .map_err(|e| format!("{id} is not an ID of layout {layout}: {e}"))?;
    let time = layout.time_of(parts.timestamp)?;
    // Every preset ticks in whole milliseconds; finer ticks get nanoseconds.
    let time = if layout.tick() >= Duration::from_millis(1) {
        humantime::format_rfc3339_millis(time).to_string()
    } else {
        humantime::format_rfc3339_nanos(time).to_string()
    };
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

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

    #[test]
    fn generates_count_unique_increasing_ids_for_the_worker() {
        // 10,000 > one batch of 4096, so several reservations are stitched together.
        let text = output(&["--count", "10000", "--worker", "513"]).unwrap();
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
        let text = output(&["--layout", "js-safe", "--count", "3", "--worker", "31"]).unwrap();
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

    #[test]
    fn bad_input_is_a_clear_error() {
        let err = parse(&["--decode", "12abc"]).unwrap_err().to_string();
        assert!(err.contains("invalid ID"), "{err}");
        let err = output(&["--worker", "1024"]).unwrap_err().to_string();
        assert!(err.contains("worker id 1024 is out of range"), "{err}");
        let err = output(&["--layout", "js-safe", "--decode", "9007199254740992"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("not an ID of layout"), "{err}");
        assert!(parse(&["--decode", "1", "--count", "3"]).is_err());
    }
}
