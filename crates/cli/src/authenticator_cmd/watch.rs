//! `backchannel authenticator watch`: the interactive authenticator over the live event
//! stream. A task keeps the stream open (reconnecting with `Last-Event-ID`, 1 s to 30 s apart);
//! the command shows one challenge at a time, asks `Approve? [y/n]`, sends the decision, and
//! withdraws a prompt whose challenge was decided elsewhere or expired.

use std::collections::{HashSet, VecDeque};
use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use backchannel_authenticator::{
    AuthenticatorError, ChallengeState, Clock as _, Decision, Device, DeviceEvent, SystemClock,
    VerifiedChallenge,
};
use tokio::sync::mpsc;

use super::args::WatchArgs;
use super::open_device;
use super::render;
use crate::CmdResult;

/// After a lost stream, the first reconnect waits this long, each failed one twice as long up
/// to `RECONNECT_MAX`.
const RECONNECT_MIN: Duration = Duration::from_secs(1);
const RECONNECT_MAX: Duration = Duration::from_secs(30);

/// What the event-stream task tells `watch`.
enum Feed {
    /// The stream is open (`again`: after a loss).
    Connected {
        again: bool,
    },
    Event(DeviceEvent),
    /// The stream ended (`None`: the server closed it); the next attempt is in `retry_in`.
    Lost {
        error: Option<AuthenticatorError>,
        retry_in: Duration,
    },
    /// The server refuses this device: watching further is pointless.
    Fatal(AuthenticatorError),
}

/// Keeps the device's event stream open: reconnects with `Last-Event-ID` after a loss, waiting
/// 1 s, then twice as long each failed attempt up to 30 s. Ends when `watch` stops listening.
fn spawn_feed(device: Arc<Device>) -> mpsc::Receiver<Feed> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let mut last: Option<i64> = None;
        let mut backoff = RECONNECT_MIN;
        let mut again = false;
        loop {
            let error = match device.events(last).await {
                Ok(mut stream) => {
                    backoff = RECONNECT_MIN;
                    if tx.send(Feed::Connected { again }).await.is_err() {
                        return;
                    }
                    again = true;
                    let error = loop {
                        match stream.next().await {
                            Ok(Some(event)) => {
                                if tx.send(Feed::Event(event)).await.is_err() {
                                    return;
                                }
                            }
                            Ok(None) => break None,
                            Err(e) => break Some(e),
                        }
                    };
                    last = stream.last_event_id();
                    backoff = stream
                        .retry()
                        .map_or(backoff, |r| r.clamp(backoff, RECONNECT_MAX));
                    error
                }
                Err(e @ AuthenticatorError::Unauthorized(_)) => {
                    let _ = tx.send(Feed::Fatal(e)).await;
                    return;
                }
                // The server does not take our last id (a restored database?): start afresh,
                // with every challenge pending now.
                Err(e @ AuthenticatorError::Api { status: 400, .. }) => {
                    last = None;
                    Some(e)
                }
                Err(e) => Some(e),
            };
            let lost = Feed::Lost {
                error,
                retry_in: backoff,
            };
            if tx.send(lost).await.is_err() {
                return;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(RECONNECT_MAX);
        }
    });
    rx
}

/// The interactive state of `watch`: one prompt at a time, challenges waiting their turn,
/// and what was already shown or answered.
#[derive(Default)]
struct Watch {
    queue: VecDeque<VerifiedChallenge>,
    /// The challenge the user is being asked about.
    current: Option<VerifiedChallenge>,
    /// Challenges queued, shown or rejected: a replay after a reconnect never asks twice.
    seen: HashSet<String>,
    /// Challenges answered here: their `challenge_closed` is our own decision coming back.
    answered: HashSet<String>,
}

impl Watch {
    /// Queues a new challenge; `false` if it was seen before.
    fn challenge(&mut self, c: VerifiedChallenge) -> bool {
        if !self.seen.insert(c.id.clone()) {
            return false;
        }
        self.queue.push_back(c);
        true
    }

    /// A challenge closed. Withdraws its prompt or its place in the queue; returns what to
    /// tell the user and whether the prompt was withdrawn.
    fn closed(&mut self, id: &str, state: ChallengeState) -> (Option<String>, bool) {
        self.seen.remove(id);
        if self.answered.remove(id) {
            return (None, false);
        }
        let how = match state {
            ChallengeState::Approved | ChallengeState::Denied => {
                format!("was {} elsewhere", state.as_str())
            }
            _ => "was closed (decided on another device, expired or withdrawn)".to_owned(),
        };
        if self.current.as_ref().is_some_and(|c| c.id == id) {
            self.current = None;
            return (
                Some(format!("Challenge {id} {how}: no answer needed.")),
                true,
            );
        }
        let queued = self.queue.len();
        self.queue.retain(|c| c.id != id);
        if self.queue.len() < queued {
            return (
                Some(format!("Challenge {id} {how} before it was shown.")),
                false,
            );
        }
        (None, false)
    }

    /// The next challenge to ask about, when none is being asked about.
    fn next_prompt(&mut self) -> Option<&VerifiedChallenge> {
        if self.current.is_some() {
            return None;
        }
        self.current = self.queue.pop_front();
        self.current.as_ref()
    }

    /// The user answered the current prompt.
    fn answer(&mut self) -> Option<VerifiedChallenge> {
        let c = self.current.take()?;
        self.answered.insert(c.id.clone());
        Some(c)
    }
}

fn prompt() -> std::io::Result<()> {
    print!("Approve? [y/n] ");
    std::io::stdout().flush()
}

pub(super) async fn watch_cmd(a: WatchArgs) -> CmdResult {
    let device = Arc::new(open_device(&a.device)?);
    println!(
        "Watching for challenges for device {} at {} (Ctrl-C to stop).",
        device.device_id(),
        device.server()
    );
    let mut feed = spawn_feed(device.clone());
    let mut stdin = stdin_lines();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut w = Watch::default();
    loop {
        if let Some(c) = w.next_prompt() {
            let mut shown = String::new();
            render::challenge(&mut shown, c, SystemClock.now_secs())?;
            print!("\n{shown}");
            prompt()?;
        }
        let prompting = w.current.is_some();
        // A prompt is withdrawn when its challenge expires, even if the server says nothing.
        let expires_in = w.current.as_ref().map_or(Duration::ZERO, |c| {
            Duration::from_secs(
                (c.claims.exp - SystemClock.now_secs())
                    .max(0)
                    .unsigned_abs(),
            )
        });
        tokio::select! {
            _ = &mut ctrl_c => return Ok(ExitCode::SUCCESS),
            msg = feed.recv() => match msg {
                None => return Err("the event stream task stopped".into()),
                Some(Feed::Fatal(e)) => {
                    if prompting {
                        println!();
                    }
                    return Err(e.into());
                }
                Some(Feed::Connected { again }) => {
                    if again {
                        eprintln!("{}event stream reconnected", if prompting { "\n" } else { "" });
                        if prompting {
                            prompt()?;
                        }
                    }
                }
                Some(Feed::Lost { error, retry_in }) => {
                    let why = error.map_or_else(|| "closed by the server".to_owned(), |e| e.to_string());
                    eprintln!(
                        "{}warning: event stream lost ({why}); reconnecting in {} s",
                        if prompting { "\n" } else { "" },
                        retry_in.as_secs()
                    );
                    if prompting {
                        prompt()?;
                    }
                }
                Some(Feed::Event(DeviceEvent::Challenge(c))) => {
                    w.challenge(c);
                }
                Some(Feed::Event(DeviceEvent::Rejected { challenge_id, error })) => {
                    if let Some(id) = &challenge_id {
                        w.seen.insert(id.clone());
                    }
                    eprintln!(
                        "{}warning: ignoring challenge {}: {error}",
                        if prompting { "\n" } else { "" },
                        challenge_id.as_deref().unwrap_or("(unreadable)")
                    );
                    if prompting {
                        prompt()?;
                    }
                }
                Some(Feed::Event(DeviceEvent::Closed { challenge_id, state })) => {
                    let (note, withdrawn) = w.closed(&challenge_id, state);
                    if let Some(note) = note {
                        println!("{}{note}", if prompting { "\n" } else { "" });
                        if prompting && !withdrawn {
                            prompt()?;
                        }
                    }
                    if withdrawn {
                        // Whatever was typed for the withdrawn prompt must not answer the next.
                        while stdin.try_recv().is_ok() {}
                    }
                }
            },
            line = stdin.recv(), if prompting => {
                let Some(line) = line.transpose()? else {
                    println!();
                    return Ok(ExitCode::SUCCESS);
                };
                let Some(decision) = parse_answer(&line) else {
                    println!("Please answer y or n.");
                    prompt()?;
                    continue;
                };
                let Some(challenge) = w.answer() else { continue };
                // The user answered here, at the device: that is the verification this
                // reference authenticator has.
                match device.decide(&challenge, decision, true).await {
                    Ok(r) => println!("-> {}", r.state),
                    Err(AuthenticatorError::ChallengeClosed(_) | AuthenticatorError::NotFound(_)) => {
                        println!("-> too late: the challenge was decided elsewhere or expired")
                    }
                    Err(e @ AuthenticatorError::Unauthorized(_)) => return Err(e.into()),
                    Err(e) => eprintln!("error: {e}"),
                }
            }
            _ = tokio::time::sleep(expires_in), if prompting => {
                if let Some(c) = w.current.take() {
                    println!("\nChallenge {} expired: no answer needed.", c.id);
                    w.seen.remove(&c.id);
                    while stdin.try_recv().is_ok() {}
                }
            }
        }
    }
}

/// Lines of standard input, read on a thread of their own: a read blocked in tokio's blocking
/// pool would keep the runtime, and so the process, from ending on Ctrl-C.
fn stdin_lines() -> tokio::sync::mpsc::Receiver<std::io::Result<String>> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn parse_answer(line: &str) -> Option<Decision> {
    match line.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Some(Decision::Approve),
        "n" | "no" => Some(Decision::Deny),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::challenge;
    use super::*;

    #[test]
    fn watch_asks_once_per_challenge_and_drops_closed_ones() {
        let mut w = Watch::default();
        assert!(w.challenge(challenge("a", Some("first"))));
        assert!(w.challenge(challenge("b", Some("second"))));
        assert!(w.challenge(challenge("c", Some("third"))));
        // A replay after a reconnect does not ask again.
        assert!(!w.challenge(challenge("a", Some("first"))));
        assert_eq!(w.next_prompt().unwrap().id, "a");
        assert!(w.next_prompt().is_none(), "one prompt at a time");
        // "b" closes while waiting its turn: it is never shown.
        let (note, withdrawn) = w.closed("b", ChallengeState::Closed);
        assert!(note.unwrap().contains("before it was shown") && !withdrawn);
        // The prompt for "a" is withdrawn when another device decides it.
        let (note, withdrawn) = w.closed("a", ChallengeState::Closed);
        assert!(note.unwrap().contains("no answer needed") && withdrawn);
        assert!(w.current.is_none());
        assert_eq!(w.next_prompt().unwrap().id, "c");
        // Our own decision coming back as challenge_closed is not news.
        assert_eq!(w.answer().unwrap().id, "c");
        assert_eq!(w.closed("c", ChallengeState::Approved), (None, false));
        // Closes of challenges never seen say nothing.
        assert_eq!(w.closed("zzz", ChallengeState::Closed), (None, false));
        assert!(w.next_prompt().is_none());
        assert!(w.seen.is_empty() && w.answered.is_empty());
    }

    #[test]
    fn answers() {
        assert_eq!(parse_answer(" Y\n"), Some(Decision::Approve));
        assert_eq!(parse_answer("yes"), Some(Decision::Approve));
        assert_eq!(parse_answer("n"), Some(Decision::Deny));
        assert_eq!(parse_answer("NO"), Some(Decision::Deny));
        assert_eq!(parse_answer("maybe"), None);
        assert_eq!(parse_answer(""), None);
    }
}
