//! The optional high-water-mark file: the highest timestamp a generator may have used,
//! written ahead of use (temp file, fsync, rename) so a restart never reissues IDs.
use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use crate::{Error, Layout};

const MAGIC: &str = "ringleader-idgen high-water mark v1";

/// One generator's high-water-mark file.
#[derive(Debug)]
pub(crate) struct HighWaterMark {
    path: PathBuf,
    tmp: PathBuf,
    layout: Layout,
    worker: u32,
}

impl HighWaterMark {
    pub(crate) fn new(path: PathBuf, layout: Layout, worker: u32) -> HighWaterMark {
        let mut tmp = path.clone().into_os_string();
        tmp.push(".tmp");
        HighWaterMark {
            path,
            tmp: tmp.into(),
            layout,
            worker,
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn body(&self, tick: u64) -> String {
        format!(
            "{MAGIC}\nlayout {}/{}/{} tick_ns={} epoch_ns={}\nworker {}\ntick {tick}\n",
            self.layout.timestamp_bits(),
            self.layout.worker_bits(),
            self.layout.sequence_bits(),
            self.layout.tick_nanos(),
            self.layout.epoch_nanos(),
            self.worker,
        )
    }

    /// The stored mark (ticks since the layout's epoch), `None` when there is no file yet.
    pub(crate) fn load(&self) -> Result<Option<u64>, Error> {
        let text = match fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(Error::HighWaterMarkIo {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        let corrupt = |reason: String| Error::HighWaterMarkCorrupt {
            path: self.path.clone(),
            reason,
        };
        let text = String::from_utf8(text).map_err(|_| corrupt("not UTF-8 text".into()))?;
        let (body, check) = text
            .rsplit_once("check ")
            .ok_or_else(|| corrupt("no checksum line (truncated?)".into()))?;
        let want = format!("{:016x}\n", checksum(body));
        if check != want {
            return Err(corrupt("checksum mismatch".into()));
        }
        let tick_line = body
            .lines()
            .find_map(|l| l.strip_prefix("tick "))
            .ok_or_else(|| corrupt("no tick line".into()))?;
        let tick: u64 = tick_line
            .parse()
            .map_err(|_| corrupt(format!("bad tick {tick_line:?}")))?;
        let expected = self.body(tick);
        if body != expected {
            // Same checksum-valid file, different header: another layout or worker.
            let first_diff = body
                .lines()
                .zip(expected.lines())
                .find(|(a, b)| a != b)
                .map(|(a, b)| format!("file has {a:?}, this generator has {b:?}"))
                .unwrap_or_else(|| "unexpected content".into());
            return Err(corrupt(format!(
                "written by a different generator: {first_diff}"
            )));
        }
        Ok(Some(tick))
    }

    /// Durably store `tick`: write a temp file, fsync it, rename it over the mark, fsync the directory.
    pub(crate) fn store(&self, tick: u64) -> Result<(), Error> {
        let io = |source| Error::HighWaterMarkIo {
            path: self.path.clone(),
            source,
        };
        let body = self.body(tick);
        let text = format!("{body}check {:016x}\n", checksum(&body));
        let mut file = File::create(&self.tmp).map_err(io)?;
        file.write_all(text.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        drop(file);
        fs::rename(&self.tmp, &self.path).map_err(io)?;
        sync_parent_dir(&self.path).map_err(io)?;
        Ok(())
    }
}

fn checksum(body: &str) -> u64 {
    twox_hash::XxHash3_64::oneshot(body.as_bytes())
}

#[cfg(unix)]
fn sync_parent_dir(path: &Path) -> std::io::Result<()> {
    // The rename is only durable once the directory entry is on disk.
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_parent_dir(_path: &Path) -> std::io::Result<()> {
    Ok(())
}
