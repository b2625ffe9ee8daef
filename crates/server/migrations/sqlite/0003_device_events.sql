-- Live delivery to devices: an append-only log of what each device must be told, read by its
-- event stream (the sequence is the SSE event id, so a reconnect with Last-Event-ID replays
-- what it missed).
CREATE TABLE device_events (
    seq          INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    device_id    TEXT    NOT NULL,
    kind         TEXT    NOT NULL CHECK (kind IN ('challenge', 'challenge_closed')),
    challenge_id TEXT    NOT NULL,
    created_at   INTEGER NOT NULL
) STRICT;
CREATE INDEX device_events_device_idx ON device_events (device_id, seq);
