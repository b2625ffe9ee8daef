-- Backchannel schema, PostgreSQL dialect. Timestamps are Unix milliseconds (BIGINT);
-- booleans are BOOLEAN; JSON values (jwks, scopes, claims, public_jwk, push,
-- authorization_details) are TEXT.
-- The SQLite migration of the same number creates the same tables and indexes.

CREATE TABLE clients (
    id                    TEXT    NOT NULL PRIMARY KEY,
    name                  TEXT    NOT NULL,
    auth_method           TEXT    NOT NULL,
    secret_hash           TEXT,
    jwks                  TEXT,
    jwks_uri              TEXT,
    scopes                TEXT    NOT NULL,
    delivery_mode         TEXT    NOT NULL,
    notification_endpoint TEXT,
    request_signing_alg   TEXT,
    user_code_required    BOOLEAN NOT NULL,
    id_token_signing_alg  TEXT    NOT NULL,
    disabled              BOOLEAN NOT NULL DEFAULT FALSE,
    created_at            BIGINT  NOT NULL
);

CREATE TABLE users (
    sub            TEXT    NOT NULL PRIMARY KEY,
    email          TEXT,
    nric           TEXT,
    username       TEXT,
    phone          TEXT,
    claims         TEXT    NOT NULL,
    user_code_hash TEXT,
    disabled       BOOLEAN NOT NULL DEFAULT FALSE,
    created_at     BIGINT  NOT NULL
);
-- Login hints name one user each; NULLs (no such identifier) may repeat.
CREATE UNIQUE INDEX users_email_key ON users (email);
CREATE UNIQUE INDEX users_nric_key ON users (nric);
CREATE UNIQUE INDEX users_username_key ON users (username);
CREATE UNIQUE INDEX users_phone_key ON users (phone);

CREATE TABLE enrolments (
    code_hash  TEXT    NOT NULL PRIMARY KEY,
    user_sub   TEXT    NOT NULL REFERENCES users (sub),
    created_at BIGINT  NOT NULL,
    expires_at BIGINT  NOT NULL,
    used_at    BIGINT
);

CREATE TABLE devices (
    id         TEXT    NOT NULL PRIMARY KEY,
    user_sub   TEXT    NOT NULL REFERENCES users (sub),
    name       TEXT    NOT NULL,
    public_jwk TEXT    NOT NULL,
    push       TEXT    NOT NULL,
    disabled   BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT  NOT NULL
);
CREATE INDEX devices_user_sub_idx ON devices (user_sub, created_at);

CREATE TABLE auth_requests (
    id                        TEXT    NOT NULL PRIMARY KEY,
    client_id                 TEXT    NOT NULL REFERENCES clients (id),
    user_sub                  TEXT    NOT NULL REFERENCES users (sub),
    scope                     TEXT    NOT NULL,
    acr_values                TEXT,
    binding_message           TEXT,
    authorization_details     TEXT,
    delivery_mode             TEXT    NOT NULL,
    client_notification_token TEXT,
    created_at                BIGINT  NOT NULL,
    expires_at                BIGINT  NOT NULL,
    interval_secs             BIGINT  NOT NULL,
    last_polled_at            BIGINT,
    state                     TEXT    NOT NULL
        CHECK (state IN ('pending', 'approved', 'denied', 'redeemed')),
    decided_at                BIGINT,
    user_verified             BOOLEAN NOT NULL DEFAULT FALSE,
    redeemed_at               BIGINT
);
CREATE INDEX auth_requests_expires_at_idx ON auth_requests (expires_at);

CREATE TABLE challenges (
    id              TEXT    NOT NULL PRIMARY KEY,
    auth_request_id TEXT    NOT NULL REFERENCES auth_requests (id),
    device_id       TEXT    NOT NULL REFERENCES devices (id),
    state           TEXT    NOT NULL
        CHECK (state IN ('pending', 'approved', 'denied', 'closed')),
    created_at      BIGINT  NOT NULL,
    decided_at      BIGINT,
    decision_jws    TEXT
);
CREATE INDEX challenges_auth_request_id_idx ON challenges (auth_request_id);
CREATE INDEX challenges_device_state_idx ON challenges (device_id, state);

-- Used `jti`s of client assertions, request objects and device JWTs, until they expire.
CREATE TABLE replay_jtis (
    scope      TEXT    NOT NULL,
    jti        TEXT    NOT NULL,
    expires_at BIGINT  NOT NULL,
    PRIMARY KEY (scope, jti)
);
CREATE INDEX replay_jtis_expires_at_idx ON replay_jtis (expires_at);

CREATE TABLE signing_keys (
    kid         TEXT    NOT NULL PRIMARY KEY,
    alg         TEXT    NOT NULL,
    private_jwk TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL
);
