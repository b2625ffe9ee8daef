//! The one writer of a SQLite file: a thread that owns the write connection, takes write jobs
//! from a channel and commits every job that arrived while the previous commit ran in one
//! transaction (group commit). Each job runs inside its own savepoint, so a job that fails is
//! rolled back alone and only its caller sees the error; every caller is answered once its
//! batch has committed, so an answer always means "durable".
//!
//! Between batches (and at least every [`CHANGE_CHECK`] when idle) the thread reads
//! `PRAGMA data_version`, which changes when another process (`backchannel admin`) committed to
//! the file, and then tells the caches to forget what they hold.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::super::{StoreError, StoreResult};

/// How often the writer looks for commits made by other processes.
pub(super) const CHANGE_CHECK: Duration = Duration::from_millis(200);
/// Jobs committed together at most: bounds the latency one batch adds to its first job.
const MAX_BATCH: usize = 512;

/// The answer to one job, sent after its batch committed (or failed to).
type Reply = Box<dyn FnOnce(StoreResult<()>) + Send>;

/// A queued job, its result type erased.
trait Task: Send {
    /// Runs on the write connection inside the job's savepoint; says whether it succeeded.
    fn run(self: Box<Self>, conn: &Connection) -> (bool, Reply);
    /// The job will not run (the transaction could not begin, or was lost).
    fn fail(self: Box<Self>, error: StoreError);
}
type Job = Box<dyn Task>;

struct Queued<T, F> {
    job: F,
    reply: oneshot::Sender<StoreResult<T>>,
}

impl<T, F> Task for Queued<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> StoreResult<T> + Send,
{
    fn run(self: Box<Self>, conn: &Connection) -> (bool, Reply) {
        let Queued { job, reply } = *self;
        let result = match std::panic::catch_unwind(AssertUnwindSafe(|| job(conn))) {
            Ok(result) => result,
            Err(_) => Err(StoreError::Backend(
                "a SQLite write job panicked".to_owned(),
            )),
        };
        let ok = result.is_ok();
        let reply: Reply = Box::new(move |committed| {
            let _ = reply.send(committed.and(result));
        });
        (ok, reply)
    }

    fn fail(self: Box<Self>, error: StoreError) {
        let _ = self.reply.send(Err(error));
    }
}

/// Sends jobs to the writer thread. Dropping every handle stops the thread after it has
/// committed what it holds.
#[derive(Clone)]
pub(super) struct Writer {
    jobs: mpsc::Sender<Job>,
}

fn stopped() -> StoreError {
    StoreError::Backend("the SQLite writer has stopped".to_owned())
}

impl Writer {
    /// Starts the writer thread on `conn`. `on_foreign_change` runs (on that thread) whenever
    /// another connection committed to the database.
    pub(super) fn spawn(
        conn: Connection,
        on_foreign_change: impl Fn() + Send + 'static,
    ) -> StoreResult<(Writer, std::thread::JoinHandle<()>)> {
        let (jobs, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(conn, rx, on_foreign_change))
            .map_err(|e| StoreError::Backend(format!("starting the SQLite writer: {e}")))?;
        Ok((Writer { jobs }, thread))
    }

    /// Runs `job` in the next batch and returns its result once the batch has committed. An
    /// `Err` from the job rolls back what the job wrote, and nothing else.
    pub(super) async fn write<T, F>(&self, job: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel::<StoreResult<T>>();
        let job: Job = Box::new(Queued { job, reply });
        self.jobs.send(job).map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }
}

fn run(conn: Connection, rx: mpsc::Receiver<Job>, on_foreign_change: impl Fn()) {
    let mut data_version = read_data_version(&conn);
    let mut next_check = Instant::now() + CHANGE_CHECK;
    loop {
        let wait = next_check.saturating_duration_since(Instant::now());
        let first = match rx.recv_timeout(wait) {
            Ok(job) => Some(job),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        if Instant::now() >= next_check {
            let now_version = read_data_version(&conn);
            if now_version != data_version {
                data_version = now_version;
                on_foreign_change();
            }
            next_check = Instant::now() + CHANGE_CHECK;
        }
        let Some(first) = first else { continue };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit_batch(&conn, batch);
    }
}

fn read_data_version(conn: &Connection) -> i64 {
    conn.query_row("PRAGMA data_version", [], |r| r.get(0))
        .unwrap_or(-1)
}

fn exec(conn: &Connection, sql: &str) -> StoreResult<()> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.raw_execute())
        .map(drop)
        .map_err(super::read::sqlite_error)
}

/// One transaction for the whole batch; a savepoint per job when there are several.
fn commit_batch(conn: &Connection, batch: Vec<Job>) {
    if let Err(e) = exec(conn, "BEGIN IMMEDIATE") {
        let message = e.to_string();
        for job in batch {
            job.fail(StoreError::Backend(message.clone()));
        }
        return;
    }
    let single = batch.len() == 1;
    let mut replies = Vec::with_capacity(batch.len());
    let mut lost: Option<String> = None;
    for job in batch {
        if let Some(message) = &lost {
            job.fail(StoreError::Backend(format!(
                "the batch did not commit: {message}"
            )));
            continue;
        }
        if !single && let Err(e) = exec(conn, "SAVEPOINT job") {
            lost = Some(e.to_string());
            job.fail(e);
            continue;
        }
        let (ok, reply) = job.run(conn);
        replies.push(reply);
        if conn.is_autocommit() {
            // SQLite rolled the whole transaction back (disk full, I/O error).
            lost = Some("the transaction was rolled back by SQLite".to_owned());
            continue;
        }
        if single {
            if !ok {
                let _ = exec(conn, "ROLLBACK");
                for reply in replies {
                    reply(Ok(()));
                }
                return;
            }
        } else if ok {
            if let Err(e) = exec(conn, "RELEASE job") {
                lost = Some(e.to_string());
            }
        } else if let Err(e) =
            exec(conn, "ROLLBACK TO job").and_then(|()| exec(conn, "RELEASE job"))
        {
            lost = Some(e.to_string());
        }
    }
    let committed = match lost {
        Some(message) => Err(message),
        None => exec(conn, "COMMIT").map_err(|e| e.to_string()),
    };
    match committed {
        Ok(()) => {
            for reply in replies {
                reply(Ok(()));
            }
        }
        Err(message) => {
            if !conn.is_autocommit() {
                let _ = exec(conn, "ROLLBACK");
            }
            for reply in replies {
                reply(Err(StoreError::Backend(format!(
                    "the batch did not commit: {message}"
                ))));
            }
        }
    }
}
