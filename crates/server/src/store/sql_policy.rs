//! The SQL of access policies, run by both backends. A policy is stored only for a client
//! that exists; a replacement keeps the first `created_at`.

/// `$1` client id, `$2` rules (JSON), `$3` created_at, `$4` updated_at. The `WHERE` also
/// settles SQLite's parsing of `INSERT ... SELECT ... ON CONFLICT`.
pub(crate) const PUT_POLICY: &str = "INSERT INTO access_policies \
    (client_id, rules, created_at, updated_at) \
    SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM clients WHERE id = $1) \
    ON CONFLICT (client_id) DO UPDATE SET rules = excluded.rules, \
    updated_at = excluded.updated_at RETURNING *";
pub(crate) const GET_POLICY: &str = "SELECT * FROM access_policies WHERE client_id = $1";
pub(crate) const LIST_POLICIES: &str =
    "SELECT * FROM access_policies ORDER BY created_at, client_id";
pub(crate) const DELETE_POLICY: &str = "DELETE FROM access_policies WHERE client_id = $1";
