-- Who may ask whom (issue 13). A request may require a verified user (its policy or its
-- acr_values), may have been replaced by a newer request of the same client for the same user
-- (replaced_at, when it was ended), and may have been denied by a user who did not ask for it
-- (not_me).
ALTER TABLE auth_requests ADD COLUMN uv_required INTEGER NOT NULL DEFAULT 0
    CHECK (uv_required IN (0, 1));
ALTER TABLE auth_requests ADD COLUMN replaced_at INTEGER;
ALTER TABLE auth_requests ADD COLUMN not_me INTEGER NOT NULL DEFAULT 0 CHECK (not_me IN (0, 1));
CREATE INDEX auth_requests_user_idx ON auth_requests (user_sub, created_at);

-- One access policy per client (domain/policy.rs), its rules as JSON.
CREATE TABLE access_policies (
    client_id  TEXT    NOT NULL PRIMARY KEY REFERENCES clients (id),
    rules      TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

-- Every request admitted by the rate limits (domain/limits.rs), written before the request
-- itself under the user's (and the client's) lock, so the limits hold across nodes.
CREATE TABLE request_admissions (
    request_id  TEXT    NOT NULL PRIMARY KEY,
    user_sub    TEXT    NOT NULL,
    client_id   TEXT    NOT NULL,
    admitted_at INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX request_admissions_user_idx ON request_admissions (user_sub, admitted_at);
CREATE INDEX request_admissions_client_idx ON request_admissions (client_id, admitted_at);

-- A client blocked from a user after the user denied one of its requests as "not me".
CREATE TABLE client_user_blocks (
    user_sub      TEXT    NOT NULL,
    client_id     TEXT    NOT NULL,
    blocked_until INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (user_sub, client_id)
) STRICT;
