-- Refresh tokens (RFC 6749 §6, RFC 9700 §4.14.2) and revoked access tokens (RFC 7009).
-- The PostgreSQL migration of the same number creates the same tables and indexes.

-- Clients registered with the refresh_token grant (RFC 7591 grant_types).
ALTER TABLE clients ADD COLUMN refresh_tokens INTEGER NOT NULL DEFAULT 0
    CHECK (refresh_tokens IN (0, 1));

-- One family per approval: every rotation continues it, a reuse or a revocation ends it,
-- and it is purged once its absolute lifetime (expires_at) is over.
CREATE TABLE refresh_families (
    id                    TEXT    NOT NULL PRIMARY KEY,
    client_id             TEXT    NOT NULL REFERENCES clients (id),
    user_sub              TEXT    NOT NULL REFERENCES users (sub),
    device_id             TEXT,
    scope                 TEXT    NOT NULL,
    authorization_details TEXT,
    authenticated_at      INTEGER NOT NULL,
    user_verified         INTEGER NOT NULL CHECK (user_verified IN (0, 1)),
    created_at            INTEGER NOT NULL,
    expires_at            INTEGER NOT NULL,
    revoked_at            INTEGER
) STRICT;
CREATE INDEX refresh_families_user_idx ON refresh_families (user_sub);
CREATE INDEX refresh_families_expiry_id_idx ON refresh_families (expires_at, id);

-- Each refresh token of a family, by the SHA-256 of its value; rotated_at is set by its one
-- use. The access token minted with it is named so that revoking the family revokes it.
CREATE TABLE refresh_tokens (
    hash              TEXT    NOT NULL PRIMARY KEY,
    family_id         TEXT    NOT NULL REFERENCES refresh_families (id),
    created_at        INTEGER NOT NULL,
    expires_at        INTEGER NOT NULL,
    rotated_at        INTEGER,
    access_jti        TEXT    NOT NULL,
    access_expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);

-- Access tokens (JWTs) revoked before their exp, by jti, until that exp.
CREATE TABLE revoked_access_tokens (
    jti        TEXT    NOT NULL PRIMARY KEY,
    expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX revoked_access_tokens_expires_at_idx ON revoked_access_tokens (expires_at);
