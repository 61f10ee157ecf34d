//! Standard output, where every line goes, with the access log's lines gathered.
//!
//! A line written as it comes is a `write` system call under the lock of standard
//! output: with the access log on that is one per request, and the workers wait for each
//! other's (bench/access-log.sh measured a quarter more CPU per request and a third fewer
//! requests per second than without the log). So each thread gathers its access lines in
//! a buffer of its own and writes them together: once 64 KiB wait, before any other line
//! the same thread logs, at most 200 ms after they came (a thread of this module wakes to
//! write what waits), and when the process ends ([`super::flush`]). Every other line is
//! written at once.
//!
//! One buffer per thread, as nginx has one per worker: the workers never touch a lock or
//! a cache line the other has just written. The price is order between workers: one
//! worker's lines are in order, but a line of another may come up to 200 ms before
//! older access lines of this one (each line carries its time). A crash loses at most
//! the last 200 ms of access lines, as nginx's `access_log … buffer=` can.

use std::cell::OnceCell;
use std::io::{self, Write};
use std::sync::{Arc, Mutex, MutexGuard, Once, PoisonError};
use std::time::Duration;

use tracing::Metadata;
use tracing_subscriber::fmt::MakeWriter;

/// Written once this much waits in a thread's buffer.
const BATCH: usize = 64 * 1024;
/// Written at most this long after it came.
const DELAY: Duration = Duration::from_millis(200);

/// Access lines one thread logged and nobody has written yet. Locked by its thread for
/// each line and by the writing thread every [`DELAY`]: almost never by both at once.
type Waiting = Arc<Mutex<Vec<u8>>>;

/// Every thread's buffer, for the writing thread and [`flush`]. A thread that ends
/// leaves its buffer here, to be written with the others.
static BUFFERS: Mutex<Vec<Waiting>> = Mutex::new(Vec::new());

thread_local! {
    /// This thread's buffer, made and registered in [`BUFFERS`] at its first access line
    /// (a thread that logs none has none).
    static MINE: OnceCell<Waiting> = const { OnceCell::new() };
}

/// A new thread's buffer, registered.
fn register() -> Waiting {
    START_WRITER.call_once(start_writer);
    let mine = Waiting::default();
    lock(&BUFFERS).push(mine.clone());
    mine
}

/// The log's writer: a line to gather (the access log's target) or to write at once.
pub struct Output;

impl<'a> MakeWriter<'a> for Output {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line { gather: false }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Line {
        Line {
            gather: meta.target() == super::ACCESS_TARGET,
        }
    }
}

/// One line on its way (the formatter writes it in one `write_all`).
pub struct Line {
    gather: bool,
}

impl Write for Line {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        if self.gather {
            let gathered = MINE.try_with(|mine| {
                let mut waiting = lock(mine.get_or_init(register));
                waiting.extend_from_slice(line);
                match waiting.len() >= BATCH {
                    true => write_out(&mut waiting),
                    false => Ok(()),
                }
            });
            match gathered {
                Ok(written) => written?,
                // The thread is ending and its buffer is gone: the line goes out alone.
                Err(_) => io::stdout().write_all(line)?,
            }
        } else {
            // This thread's access lines first: they came before. (A thread ending
            // has no buffer to reach any more: it then only writes the line.)
            let _ = MINE.try_with(|mine| mine.get().map(|mine| write_out(&mut lock(mine))));
            io::stdout().write_all(line)?;
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while a lock was held left at worst a partial batch: write on.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Writes what waits in one buffer, under its lock.
fn write_out(waiting: &mut Vec<u8>) -> io::Result<()> {
    if waiting.is_empty() {
        return Ok(());
    }
    let written = io::stdout().lock().write_all(waiting);
    waiting.clear();
    written
}

/// Writes the access lines that wait, every thread's.
pub fn flush() {
    let buffers = lock(&BUFFERS).clone();
    for waiting in buffers {
        let _ = write_out(&mut lock(&waiting));
    }
}

static START_WRITER: Once = Once::new();

/// The thread that writes gathered lines within [`DELAY`]; started with the first
/// buffer. If it cannot start, lines wait for a full batch, another line or the end.
fn start_writer() {
    let _ = std::thread::Builder::new()
        .name("tokengate-log".into())
        .spawn(|| loop {
            std::thread::sleep(DELAY);
            flush();
        });
}
