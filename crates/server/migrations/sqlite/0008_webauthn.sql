-- The WebAuthn credential a browser authenticator registered at enrolment to verify its user
-- (domain/webauthn.rs): at most one per device, its public key as a JWK, and the signature
-- counter, raised by one conditional UPDATE per verified assertion.
CREATE TABLE webauthn_credentials (
    device_id     TEXT    NOT NULL PRIMARY KEY REFERENCES devices (id),
    credential_id TEXT    NOT NULL,
    public_jwk    TEXT    NOT NULL,
    alg           TEXT    NOT NULL,
    sign_count    INTEGER NOT NULL,
    created_at    INTEGER NOT NULL
) STRICT;
