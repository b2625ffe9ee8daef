//! An incremental Server-Sent Events parser (WHATWG HTML "Server-sent events", §9.2.6
//! "Interpreting an event stream"): bytes go in as they arrive, in chunks split anywhere, and
//! whole events come out.

use std::collections::VecDeque;

/// Longest line or event the parser buffers. The device API's events are a few kilobytes; a
/// stream that sends more without a line break is not one we can use.
pub(crate) const MAX_EVENT_BYTES: usize = 1 << 20;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseEvent {
    /// The stream's last event id when this event was dispatched (an `id:` field persists
    /// across events, as the specification says); `None` if the stream has not set one.
    pub id: Option<String>,
    /// `event:`, or `message` when the event named none.
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// The line or event exceeded [`MAX_EVENT_BYTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooLong;

#[derive(Debug, Default)]
pub(crate) struct SseParser {
    /// Bytes of an incomplete line.
    line: Vec<u8>,
    /// The previous chunk ended in CR: an LF starting the next one belongs to that line break.
    skip_lf: bool,
    /// Whether the stream's first bytes were seen (a leading BOM is dropped).
    started: bool,
    event: String,
    data: String,
    /// Whether a `data:` field was seen for the event being built.
    has_data: bool,
    last_id: Option<String>,
    retry_ms: Option<u64>,
    ready: VecDeque<SseEvent>,
}

impl SseParser {
    pub fn new() -> Self {
        SseParser::default()
    }

    /// Feeds the next bytes of the stream; complete events become available from
    /// [`SseParser::pop`].
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), TooLong> {
        if !self.started && !bytes.is_empty() {
            // A UTF-8 BOM may open the stream (it could itself be split across chunks).
            const BOM: &[u8] = b"\xEF\xBB\xBF";
            let have = self.line.len();
            let take = (BOM.len() - have).min(bytes.len());
            if BOM[have..].starts_with(&bytes[..take]) {
                self.line.extend_from_slice(&bytes[..take]);
                bytes = &bytes[take..];
                if self.line.len() < BOM.len() {
                    return Ok(());
                }
                self.line.clear();
            } else {
                // Not a BOM after all: the bytes held back are content.
                let held = std::mem::take(&mut self.line);
                self.started = true;
                self.feed(&held)?;
            }
            self.started = true;
        }
        if self.skip_lf && !bytes.is_empty() {
            self.skip_lf = false;
            if bytes[0] == b'\n' {
                bytes = &bytes[1..];
            }
        }
        while let Some(end) = bytes.iter().position(|b| *b == b'\n' || *b == b'\r') {
            self.push_line_bytes(&bytes[..end])?;
            let line = std::mem::take(&mut self.line);
            self.process_line(&String::from_utf8_lossy(&line))?;
            let crlf = bytes[end] == b'\r';
            bytes = &bytes[end + 1..];
            if crlf {
                match bytes.first() {
                    Some(b'\n') => bytes = &bytes[1..],
                    Some(_) => {}
                    None => self.skip_lf = true,
                }
            }
        }
        self.push_line_bytes(bytes)
    }

    /// The next complete event, oldest first.
    pub fn pop(&mut self) -> Option<SseEvent> {
        self.ready.pop_front()
    }

    /// The oldest complete event, left in place.
    pub fn peek(&self) -> Option<&SseEvent> {
        self.ready.front()
    }

    /// The reconnection time the server asked for with `retry:`, in milliseconds.
    pub fn retry_ms(&self) -> Option<u64> {
        self.retry_ms
    }

    fn push_line_bytes(&mut self, bytes: &[u8]) -> Result<(), TooLong> {
        if self.line.len() + bytes.len() > MAX_EVENT_BYTES {
            return Err(TooLong);
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn process_line(&mut self, line: &str) -> Result<(), TooLong> {
        if line.is_empty() {
            self.dispatch();
            return Ok(());
        }
        if line.starts_with(':') {
            // A comment: the server's heartbeat. Its arrival is all that matters.
            return Ok(());
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => value.clone_into(&mut self.event),
            "data" => {
                if self.data.len() + value.len() + 1 > MAX_EVENT_BYTES {
                    return Err(TooLong);
                }
                self.data.push_str(value);
                self.data.push('\n');
                self.has_data = true;
            }
            "id" if !value.contains('\0') => {
                self.last_id = (!value.is_empty()).then(|| value.to_owned());
            }
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.retry_ms = value.parse().ok();
            }
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self) {
        let event = std::mem::take(&mut self.event);
        let mut data = std::mem::take(&mut self.data);
        if !std::mem::take(&mut self.has_data) {
            // An event without data is not dispatched (its id still counts).
            return;
        }
        data.pop();
        self.ready.push_back(SseEvent {
            id: self.last_id.clone(),
            event: if event.is_empty() {
                "message".into()
            } else {
                event
            },
            data,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(p: &mut SseParser) -> Vec<SseEvent> {
        std::iter::from_fn(|| p.pop()).collect()
    }

    fn ev(id: Option<&str>, event: &str, data: &str) -> SseEvent {
        SseEvent {
            id: id.map(str::to_owned),
            event: event.into(),
            data: data.into(),
        }
    }

    const STREAM: &str = ":heartbeat\n\n\
        id: 7\nevent: challenge\ndata: {\"challenge_id\":\"a\",\"challenge\":\"x.y.z\"}\n\n\
        : another comment\n\
        event: challenge_closed\r\nid:8\r\ndata: {\"challenge_id\":\"a\",\r\ndata:\"state\":\"approved\"}\r\n\r\n\
        data: plain\rdata:  two spaces\r\r\
        data\n\n";

    fn expected() -> Vec<SseEvent> {
        vec![
            ev(
                Some("7"),
                "challenge",
                "{\"challenge_id\":\"a\",\"challenge\":\"x.y.z\"}",
            ),
            ev(
                Some("8"),
                "challenge_closed",
                "{\"challenge_id\":\"a\",\n\"state\":\"approved\"}",
            ),
            // The id persists; only one leading space is removed; CR alone ends lines.
            ev(Some("8"), "message", "plain\n two spaces"),
            // A field name alone is an empty value.
            ev(Some("8"), "message", ""),
        ]
    }

    #[test]
    fn a_whole_stream_parses_with_comments_multiline_data_and_every_line_ending() {
        let mut p = SseParser::new();
        p.feed(STREAM.as_bytes()).unwrap();
        assert_eq!(all(&mut p), expected());
    }

    #[test]
    fn chunks_split_anywhere_give_the_same_events() {
        let bytes = STREAM.as_bytes();
        // Every single split point, and byte-at-a-time.
        for cut in 0..=bytes.len() {
            let mut p = SseParser::new();
            p.feed(&bytes[..cut]).unwrap();
            p.feed(&bytes[cut..]).unwrap();
            assert_eq!(all(&mut p), expected(), "split at {cut}");
        }
        let mut p = SseParser::new();
        for b in bytes {
            p.feed(std::slice::from_ref(b)).unwrap();
        }
        assert_eq!(all(&mut p), expected());
    }

    #[test]
    fn a_crlf_split_between_chunks_is_one_line_break() {
        let mut p = SseParser::new();
        p.feed(b"data: a\r").unwrap();
        p.feed(b"\n\r").unwrap();
        p.feed(b"\ndata: b\r\n\r\n").unwrap();
        assert_eq!(
            all(&mut p),
            [ev(None, "message", "a"), ev(None, "message", "b")]
        );
    }

    #[test]
    fn utf8_split_inside_a_character_survives() {
        let text = "data: Überweisung 120 €\n\n".as_bytes();
        let euro = text.len() - 4; // inside the three bytes of "€"
        let mut p = SseParser::new();
        p.feed(&text[..euro]).unwrap();
        p.feed(&text[euro..]).unwrap();
        assert_eq!(all(&mut p), [ev(None, "message", "Überweisung 120 €")]);
    }

    #[test]
    fn an_incomplete_event_is_not_dispatched() {
        let mut p = SseParser::new();
        p.feed(b"id: 3\nevent: challenge\ndata: {}\n").unwrap();
        assert_eq!(p.pop(), None);
        p.feed(b"\n").unwrap();
        assert_eq!(p.pop(), Some(ev(Some("3"), "challenge", "{}")));
    }

    #[test]
    fn events_without_data_are_dropped_but_their_id_and_retry_count() {
        let mut p = SseParser::new();
        p.feed(b"id: 4\nevent: challenge\n\nretry: 2500\nretry: soon\n\ndata: x\n\n")
            .unwrap();
        assert_eq!(all(&mut p), [ev(Some("4"), "message", "x")]);
        assert_eq!(p.retry_ms(), Some(2500));
        // An empty id resets it; an id containing NUL is ignored.
        p.feed(b"id: 9\0\ndata: y\n\nid\ndata: z\n\n").unwrap();
        assert_eq!(
            all(&mut p),
            [ev(Some("4"), "message", "y"), ev(None, "message", "z")]
        );
    }

    #[test]
    fn a_leading_bom_is_dropped_even_when_split() {
        let mut p = SseParser::new();
        p.feed(b"\xEF").unwrap();
        p.feed(b"\xBB\xBFdata: a\n\n").unwrap();
        assert_eq!(all(&mut p), [ev(None, "message", "a")]);
        // Bytes that only look like the start of one are kept.
        let mut p = SseParser::new();
        p.feed(b"\xEF").unwrap();
        p.feed(b"data: a\n\n").unwrap();
        assert_eq!(p.pop().map(|e| e.event), None, "the field name is garbled");
        let mut p = SseParser::new();
        p.feed(b"data: \xEF\xBB\xBFx\n\n").unwrap();
        assert_eq!(p.pop().unwrap().data, "\u{feff}x", "a BOM later is content");
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let mut p = SseParser::new();
        p.feed(b"foo: bar\ndata:1\nData: 2\n\n").unwrap();
        assert_eq!(all(&mut p), [ev(None, "message", "1")]);
    }

    #[test]
    fn an_endless_line_is_refused() {
        let mut p = SseParser::new();
        let big = vec![b'a'; MAX_EVENT_BYTES / 2];
        p.feed(b"data: ").unwrap();
        p.feed(&big).unwrap();
        assert_eq!(p.feed(&big), Err(TooLong));
        // So is an event of many small lines.
        let mut p = SseParser::new();
        let line = format!("data: {}\n", "b".repeat(1000));
        let mut refused = false;
        for _ in 0..(MAX_EVENT_BYTES / 1000 + 2) {
            if p.feed(line.as_bytes()).is_err() {
                refused = true;
                break;
            }
        }
        assert!(refused);
    }
}
