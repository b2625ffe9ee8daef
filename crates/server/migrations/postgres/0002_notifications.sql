-- Ping and push delivery (CIBA Core §10.2, §10.3): the auth_req_id itself is kept for ping
-- and push requests (the client must be sent it), and a durable outbox holds at most one
-- notification per request.

ALTER TABLE auth_requests ADD COLUMN auth_req_id TEXT;

CREATE TABLE notifications (
    id              TEXT    NOT NULL PRIMARY KEY,
    auth_request_id TEXT    NOT NULL UNIQUE REFERENCES auth_requests (id),
    client_id       TEXT    NOT NULL,
    kind            TEXT    NOT NULL CHECK (kind IN ('ping', 'push_tokens', 'push_error')),
    payload         TEXT,
    state           TEXT    NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    deadline        BIGINT NOT NULL,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    delivered_at    BIGINT
);
CREATE INDEX notifications_due_idx ON notifications (state, next_attempt_at);
