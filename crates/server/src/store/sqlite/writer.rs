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

/// A queued job, its result type erased. A job may run twice: a batch first runs without
/// savepoints, and only when one of its jobs fails is it rolled back and run again with a
/// savepoint per job (failures are rare; savepoints copy every page a job touches).
trait Task: Send {
    /// Runs on the write connection and keeps the result; says whether it succeeded.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Answers the caller: the kept result if `committed` is `Ok`, else the failure.
    fn answer(self: Box<Self>, committed: StoreResult<()>);
}
type Job = Box<dyn Task>;

struct Queued<T, F> {
    job: F,
    result: Option<StoreResult<T>>,
    reply: oneshot::Sender<StoreResult<T>>,
}

impl<T, F> Task for Queued<T, F>
where
    T: Send + 'static,
    F: Fn(&Connection) -> StoreResult<T> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let result = match std::panic::catch_unwind(AssertUnwindSafe(|| (self.job)(conn))) {
            Ok(result) => result,
            Err(_) => Err(StoreError::Backend(
                "a SQLite write job panicked".to_owned(),
            )),
        };
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn answer(self: Box<Self>, committed: StoreResult<()>) {
        let Queued { result, reply, .. } = *self;
        let result = committed.and_then(|()| {
            result.unwrap_or_else(|| Err(StoreError::Backend("the write job did not run".into())))
        });
        let _ = reply.send(result);
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
        F: Fn(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel::<StoreResult<T>>();
        let job: Job = Box::new(Queued {
            job,
            result: None,
            reply,
        });
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

/// One transaction for the whole batch. Fast path: the jobs run one after the other and the
/// batch commits. If a job fails, everything is rolled back and the batch runs again with a
/// savepoint per job, so that only the failed job's writes are undone.
fn commit_batch(conn: &Connection, mut batch: Vec<Job>) {
    let outcome = match run_batch(conn, &mut batch, false) {
        // A lone job that failed was rolled back: its caller gets the job's own error.
        Ok(Ran::Committed) | Ok(Ran::RolledBack) if batch.len() == 1 => Ok(()),
        Ok(Ran::Committed) => Ok(()),
        Ok(Ran::RolledBack) => run_batch(conn, &mut batch, true).map(drop),
        Err(e) => Err(e),
    };
    for job in batch {
        let committed = match &outcome {
            Ok(()) => Ok(()),
            Err(e) => Err(StoreError::Backend(format!(
                "the batch did not commit: {e}"
            ))),
        };
        job.answer(committed);
    }
}

enum Ran {
    Committed,
    /// A job failed (without savepoints): nothing of the batch was kept.
    RolledBack,
}

fn run_batch(conn: &Connection, batch: &mut [Job], savepoints: bool) -> StoreResult<Ran> {
    exec(conn, "BEGIN IMMEDIATE")?;
    let result = (|| {
        for job in batch.iter_mut() {
            if savepoints {
                exec(conn, "SAVEPOINT job")?;
            }
            let ok = job.run(conn);
            if conn.is_autocommit() {
                // SQLite rolled the whole transaction back (disk full, I/O error).
                return Err(StoreError::Backend(
                    "the transaction was rolled back by SQLite".to_owned(),
                ));
            }
            match (ok, savepoints) {
                (true, true) => exec(conn, "RELEASE job")?,
                (false, true) => {
                    exec(conn, "ROLLBACK TO job")?;
                    exec(conn, "RELEASE job")?;
                }
                (true, false) => {}
                (false, false) => return Ok(Ran::RolledBack),
            }
        }
        exec(conn, "COMMIT")?;
        Ok(Ran::Committed)
    })();
    if !matches!(result, Ok(Ran::Committed)) && !conn.is_autocommit() {
        let _ = exec(conn, "ROLLBACK");
    }
    result
}
