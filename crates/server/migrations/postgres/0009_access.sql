-- Who may ask whom (issue 13). A request may require a verified user (its policy or its
-- acr_values), may have been replaced by a newer request of the same client for the same user
-- (replaced_at, when it was ended), and may have been denied by a user who did not ask for it
-- (not_me).
ALTER TABLE auth_requests ADD COLUMN uv_required BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE auth_requests ADD COLUMN replaced_at BIGINT;
ALTER TABLE auth_requests ADD COLUMN not_me BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX auth_requests_user_idx ON auth_requests (user_sub, created_at);

-- One access policy per client (domain/policy.rs), its rules as JSON.
CREATE TABLE access_policies (
    client_id  TEXT    NOT NULL PRIMARY KEY REFERENCES clients (id),
    rules      TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    updated_at BIGINT  NOT NULL
);

-- Every request admitted by the rate limits (domain/limits.rs), written before the request
-- itself under the user's (and the client's) lock, so the limits hold across nodes.
CREATE TABLE request_admissions (
    request_id  TEXT    NOT NULL PRIMARY KEY,
    user_sub    TEXT    NOT NULL,
    client_id   TEXT    NOT NULL,
    admitted_at BIGINT  NOT NULL,
    expires_at  BIGINT  NOT NULL
);
CREATE INDEX request_admissions_user_idx ON request_admissions (user_sub, admitted_at);
CREATE INDEX request_admissions_client_idx ON request_admissions (client_id, admitted_at);

-- A client blocked from a user after the user denied one of its requests as "not me".
CREATE TABLE client_user_blocks (
    user_sub      TEXT    NOT NULL,
    client_id     TEXT    NOT NULL,
    blocked_until BIGINT  NOT NULL,
    created_at    BIGINT  NOT NULL,
    PRIMARY KEY (user_sub, client_id)
);
