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

-- Durable push fan-out: one row per challenge, written with the request, so a push still goes
-- out after a crash that followed the /bc-authorize answer. `delivered` lists the channels
-- already done (JSON array), so a retry does not push them twice.
CREATE TABLE push_deliveries (
    challenge_id    TEXT    NOT NULL PRIMARY KEY,
    device_id       TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('pending', 'done', 'failed')),
    delivered       TEXT    NOT NULL DEFAULT '[]',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    deadline        INTEGER NOT NULL,
    last_error      TEXT,
    created_at      INTEGER NOT NULL
) STRICT;
CREATE INDEX push_deliveries_due_idx ON push_deliveries (state, next_attempt_at);
