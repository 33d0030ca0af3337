//! The optional high-water-mark file: the highest timestamp a generator may have used,
//! written ahead of use (temp file, fsync, rename) so a restart never reissues IDs, and
//! the advisory lock that keeps a second generator off the same file.
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

use fs4::{FileExt, TryLockError};

use crate::{Error, Layout};

const MAGIC_V1: &str = "ringleader-idgen high-water mark v1";
const MAGIC: &str = "ringleader-idgen high-water mark v2";

/// What a mark file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stored {
    /// No ID of this worker has a timestamp past this tick.
    pub(crate) tick: u64,
    /// The clock's tick when the file was written (`None` in a v1 file, which lacks it).
    pub(crate) written: Option<u64>,
}

/// One generator's high-water-mark file, locked for as long as this value lives.
#[derive(Debug)]
pub(crate) struct HighWaterMark {
    path: PathBuf,
    tmp: PathBuf,
    layout: Layout,
    worker: u32,
    /// `<path>.lock`, exclusively `flock`ed (`LockFileEx` on Windows) while this value lives,
    /// holding the owner's pid. A separate file because the mark itself is replaced by
    /// rename on every write, and a lock on a replaced inode would protect nothing.
    _lock: File,
}

impl HighWaterMark {
    /// Lock `<path>.lock` (creating it) and return the mark file's handle; another holder
    /// of the lock, in this process or another, is [`Error::HighWaterMarkLocked`].
    pub(crate) fn open(path: PathBuf, layout: Layout, worker: u32) -> Result<HighWaterMark, Error> {
        let lock_path = with_suffix(&path, ".lock");
        let io = |source| Error::HighWaterMarkIo {
            path: lock_path.clone(),
            source,
        };
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(io)?;
        // Called through the trait: std's own `File::try_lock` (same semantics) needs Rust 1.89.
        match FileExt::try_lock(&lock) {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(Error::HighWaterMarkLocked {
                    pid: holder_pid(&mut lock),
                    path,
                })
            }
            Err(TryLockError::Error(source)) => return Err(io(source)),
        }
        // Ours now: record who holds it, for the error a second process gets.
        lock.set_len(0).map_err(io)?;
        lock.write_all(format!("{}\n", std::process::id()).as_bytes())
            .map_err(io)?;
        Ok(HighWaterMark {
            tmp: with_suffix(&path, ".tmp"),
            path,
            layout,
            worker,
            _lock: lock,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn header(&self, magic: &str) -> String {
        format!(
            "{magic}\nlayout {}/{}/{} tick_ns={} epoch_ns={}\nworker {}\n",
            self.layout.timestamp_bits(),
            self.layout.worker_bits(),
            self.layout.sequence_bits(),
            self.layout.tick_nanos(),
            self.layout.epoch_nanos(),
            self.worker,
        )
    }

    fn body(&self, stored: Stored) -> String {
        match stored.written {
            Some(written) => format!(
                "{}tick {}\nwritten {written}\n",
                self.header(MAGIC),
                stored.tick
            ),
            None => format!("{}tick {}\n", self.header(MAGIC_V1), stored.tick),
        }
    }

    /// The stored mark, `None` when there is no file yet.
    pub(crate) fn load(&self) -> Result<Option<Stored>, Error> {
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
        let number = |key: &str| -> Result<Option<u64>, Error> {
            body.lines()
                .find_map(|l| l.strip_prefix(key))
                .map(|v| v.parse().map_err(|_| corrupt(format!("bad {key}{v:?}"))))
                .transpose()
        };
        let tick = number("tick ")?.ok_or_else(|| corrupt("no tick line".into()))?;
        // v1 files (before the write time was recorded) are read as such.
        let written = if body.starts_with(&format!("{MAGIC_V1}\n")) {
            None
        } else {
            Some(number("written ")?.ok_or_else(|| corrupt("no written line".into()))?)
        };
        let stored = Stored { tick, written };
        let expected = self.body(stored);
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
        Ok(Some(stored))
    }

    /// Durably store `tick` as the mark (v2, with the clock's tick `written`): write a temp
    /// file, fsync it, rename it over the mark, fsync the directory.
    pub(crate) fn store(&self, tick: u64, written: u64) -> Result<(), Error> {
        let io = |source| Error::HighWaterMarkIo {
            path: self.path.clone(),
            source,
        };
        let body = self.body(Stored {
            tick,
            written: Some(written),
        });
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

/// `path` with `suffix` appended to its file name (`w.hwm` -> `w.hwm.lock`).
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    p.into()
}

/// The pid the holder wrote into the lock file (`None` if it has not yet, or the platform
/// does not let a non-holder read a locked file).
fn holder_pid(lock: &mut File) -> Option<u32> {
    let mut text = String::new();
    lock.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_files_are_read_without_a_write_time_and_rewritten_as_v2() {
        let dir = std::env::temp_dir().join(format!("ringleader-idgen-v1-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("w.hwm");
        let mark = HighWaterMark::open(path.clone(), Layout::TWITTER, 4).unwrap();
        let v1 = mark.body(Stored {
            tick: 1234,
            written: None,
        });
        assert!(v1.starts_with(MAGIC_V1));
        fs::write(&path, format!("{v1}check {:016x}\n", checksum(&v1))).unwrap();
        assert_eq!(
            mark.load().unwrap(),
            Some(Stored {
                tick: 1234,
                written: None
            })
        );
        mark.store(1300, 1250).unwrap();
        assert!(fs::read_to_string(&path).unwrap().starts_with(MAGIC));
        assert_eq!(
            mark.load().unwrap(),
            Some(Stored {
                tick: 1300,
                written: Some(1250)
            })
        );
        drop(mark);
        let _ = fs::remove_dir_all(&dir);
    }
}
