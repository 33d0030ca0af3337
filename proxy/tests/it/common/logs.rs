//! The proxy's log lines as a user sees them: plain text from DEBUG up, captured per test thread
//! (and the tasks a current-thread runtime runs on it) by one global subscriber.
//!
//! One global subscriber, installed once, never a per-thread `set_default`: with scoped
//! dispatchers, tracing-core 0.1 computes a callsite's cached interest from the registering
//! thread's default when only one dispatcher is registered, so a callsite first hit on
//! another test's thread (no subscriber there) was cached as "never" and this test's capture
//! silently missed its lines. Here every callsite is "sometimes" and each event asks the
//! filter, which looks at the emitting thread's capture.
use std::cell::RefCell;
use std::io::Write;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, Once};
use tracing::level_filters::LevelFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::Layer as _;

/// Captured log text; lines appear as the proxy logs them.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

thread_local! {
    /// Where this thread's log lines go, while a test captures them.
    static SINK: RefCell<Option<Logs>> = const { RefCell::new(None) };
}

/// Whether this thread's lines are being captured.
fn capturing() -> bool {
    SINK.with(|s| s.borrow().is_some())
}

/// Writes a formatted line into the emitting thread's capture (one write per event).
struct ThreadSink;

impl Write for ThreadSink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        SINK.with(|s| {
            if let Some(logs) = &*s.borrow() {
                logs.0.lock().unwrap().extend_from_slice(b);
            }
        });
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Install the global subscriber (once per test binary).
fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let filter = tracing_subscriber::filter::dynamic_filter_fn(|meta, _| {
            *meta.level() <= tracing::Level::DEBUG && capturing()
        })
        .with_max_level_hint(LevelFilter::DEBUG);
        let layer = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .without_time()
            .with_writer(|| ThreadSink)
            .with_filter(filter);
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
            .expect("no other global subscriber in the test binary");
    });
}

/// Captures this thread's lines until dropped (then restores the previous capture, if any).
pub struct CaptureGuard {
    previous: Option<Logs>,
    /// Tied to the thread whose lines it captures.
    _not_send: PhantomData<*const ()>,
}

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        SINK.with(|s| *s.borrow_mut() = previous);
    }
}

impl Logs {
    /// Capture everything from DEBUG up on this thread until the guard drops
    /// (use a current-thread runtime so spawned tasks log here too).
    pub fn capture() -> (Logs, CaptureGuard) {
        install();
        let logs = Logs::default();
        let previous = SINK.with(|s| s.borrow_mut().replace(logs.clone()));
        let guard = CaptureGuard {
            previous,
            _not_send: PhantomData,
        };
        (logs, guard)
    }

    /// The lines logged so far that contain every one of `needles`.
    pub fn lines_with(&self, needles: &[&str]) -> Vec<String> {
        let buf = self.0.lock().unwrap();
        String::from_utf8_lossy(&buf)
            .lines()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .map(str::to_string)
            .collect()
    }

    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}
