//! The SQL of refresh tokens and revoked access tokens, shared by both backends like
//! [`super::sql`]. A rotation is one conditional UPDATE (the token not yet rotated, its family
//! in force), so of two uses of one token exactly one rotates it; revoking a family copies the
//! `jti`s of the access tokens minted with it into `revoked_access_tokens`.

pub(crate) const INSERT_REFRESH_FAMILY: &str = "INSERT INTO refresh_families (id, client_id, \
    user_sub, device_id, scope, authorization_details, authenticated_at, user_verified, \
    created_at, expires_at, revoked_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
pub(crate) const INSERT_REFRESH_TOKEN: &str = "INSERT INTO refresh_tokens (hash, family_id, \
    created_at, expires_at, rotated_at, access_jti, access_expires_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7)";
pub(crate) const GET_REFRESH_TOKEN: &str = "SELECT t.hash AS rt_hash, \
    t.family_id AS rt_family_id, t.created_at AS rt_created_at, t.expires_at AS rt_expires_at, \
    t.rotated_at AS rt_rotated_at, t.access_jti AS rt_access_jti, \
    t.access_expires_at AS rt_access_expires_at, f.* \
    FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id WHERE t.hash = $1";
/// The one use of token `$1` at `$2`: unrotated, unexpired, its family in force and unexpired.
pub(crate) const ROTATE_REFRESH_TOKEN: &str = "UPDATE refresh_tokens SET rotated_at = $2 \
    WHERE hash = $1 AND rotated_at IS NULL AND expires_at > $2 \
    AND family_id IN (SELECT id FROM refresh_families \
        WHERE revoked_at IS NULL AND expires_at > $2)";

/// The access tokens minted with the family's tokens, still unexpired at `$2`, revoked until
/// their own expiry; then the family itself.
pub(crate) const REVOKE_FAMILY_ACCESS_TOKENS: &str = "INSERT INTO revoked_access_tokens \
    (jti, expires_at) SELECT access_jti, access_expires_at FROM refresh_tokens \
    WHERE family_id = $1 AND access_expires_at > $2 ON CONFLICT (jti) DO NOTHING";
pub(crate) const REVOKE_FAMILY: &str = "UPDATE refresh_families SET revoked_at = $2 \
    WHERE id = $1 AND revoked_at IS NULL";
/// The same for every family of user `$1` still in force.
pub(crate) const REVOKE_USER_ACCESS_TOKENS: &str = "INSERT INTO revoked_access_tokens \
    (jti, expires_at) SELECT t.access_jti, t.access_expires_at FROM refresh_tokens t \
    JOIN refresh_families f ON f.id = t.family_id \
    WHERE f.user_sub = $1 AND f.revoked_at IS NULL AND t.access_expires_at > $2 \
    ON CONFLICT (jti) DO NOTHING";
pub(crate) const REVOKE_USER_FAMILIES: &str = "UPDATE refresh_families SET revoked_at = $2 \
    WHERE user_sub = $1 AND revoked_at IS NULL";

pub(crate) const REVOKE_ACCESS_TOKEN: &str = "INSERT INTO revoked_access_tokens \
    (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING";
pub(crate) const ACCESS_TOKEN_REVOKED: &str =
    "SELECT EXISTS (SELECT 1 FROM revoked_access_tokens WHERE jti = $1) AS revoked";
