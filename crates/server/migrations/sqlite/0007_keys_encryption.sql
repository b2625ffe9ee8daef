-- Signing keys may be stored sealed: `private_jwk` then holds the AES-256-GCM sealing of the
-- private JWK under the key in `[keys] encryption_key_file` (domain::key_sealing), not the JWK.
ALTER TABLE signing_keys ADD COLUMN sealed INTEGER NOT NULL DEFAULT 0 CHECK (sealed IN (0, 1));

-- Encrypted ID tokens (OIDC Core §10.2, OIDC Registration §2): both set or both NULL.
ALTER TABLE clients ADD COLUMN id_token_encrypted_response_alg TEXT;
ALTER TABLE clients ADD COLUMN id_token_encrypted_response_enc TEXT;
