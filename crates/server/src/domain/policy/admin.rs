//! Managing access policies, shared by the admin API (`/admin/v1/policies`) and `backchannel
//! admin policy`: create-or-replace with its input checked against the client's registration
//! and the configuration, show, list, delete.

use serde::Serialize;

use super::{AccessPolicy, PolicyRules, UserRule};
use crate::domain::Domain;
use crate::domain::error::{AuthError, AuthResult};

/// `GET /admin/v1/policies`, `admin policy list`.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyList {
    pub policies: Vec<AccessPolicy>,
}

/// A policy removed: its client is back to `[policies] clients_without_policy`.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyDeleted {
    pub client_id: String,
    pub deleted: bool,
}

/// Most subjects one policy lists (beyond that, a claim or a group says it better).
const MAX_SUBJECTS: usize = 10_000;

fn bad(msg: impl Into<String>) -> AuthError {
    AuthError::InvalidRequest(msg.into())
}

/// A name or value an operator typed: 1 to `max` characters, none of them control
/// characters.
fn check_text(what: &str, value: &str, max: usize) -> AuthResult<()> {
    let len = value.chars().count();
    if len == 0 || len > max || value.chars().any(char::is_control) {
        return Err(bad(format!(
            "{what} must be 1 to {max} printable characters"
        )));
    }
    Ok(())
}

/// Each once, in the order given.
fn dedup(items: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

fn no_such_client() -> AuthError {
    AuthError::NotFound("no such client".into())
}

impl Domain {
    /// [`Domain::set_policy`] from a JSON body (`PUT /admin/v1/policies/{client_id}`): an
    /// object of [`PolicyRules`] members, nothing else (serde would take an array too).
    pub async fn set_policy_from_json(
        &self,
        client_id: &str,
        body: serde_json::Value,
    ) -> AuthResult<AccessPolicy> {
        if !body.is_object() {
            return Err(bad("the policy must be a JSON object"));
        }
        let rules: PolicyRules =
            serde_json::from_value(body).map_err(|e| bad(format!("invalid policy: {e}")))?;
        self.set_policy(client_id, rules).await
    }

    /// Creates or replaces the policy of a registered client (`created_at` stays that of the
    /// first). Scopes must be registered for the client (`openid` is always allowed and
    /// added), types configured in `[authorization_details] types`, the maximum expiry within
    /// `[ciba]`'s bounds.
    pub async fn set_policy(
        &self,
        client_id: &str,
        rules: PolicyRules,
    ) -> AuthResult<AccessPolicy> {
        let client = self
            .stores
            .clients
            .get_client(client_id)
            .await?
            .ok_or_else(no_such_client)?;
        let users = match rules.users {
            UserRule::All => UserRule::All,
            UserRule::Claim { name, value } => {
                check_text("the claim name", &name, 128)?;
                check_text("the claim value", &value, 256)?;
                UserRule::Claim { name, value }
            }
            UserRule::Group(group) => {
                check_text("the group", &group, 128)?;
                UserRule::Group(group)
            }
            UserRule::Subjects(subs) => {
                if subs.is_empty() || subs.len() > MAX_SUBJECTS {
                    return Err(bad(format!("subjects must list 1 to {MAX_SUBJECTS} subs")));
                }
                for sub in &subs {
                    check_text("each subject", sub, 256)?;
                }
                UserRule::Subjects(dedup(subs))
            }
        };
        let scopes = match rules.scopes {
            None => None,
            Some(scopes) => {
                let mut all = vec!["openid".to_owned()];
                all.extend(scopes.into_iter().flat_map(|s| {
                    s.split(' ')
                        .filter(|t| !t.is_empty())
                        .map(str::to_owned)
                        .collect::<Vec<_>>()
                }));
                let all = dedup(all);
                if let Some(unknown) = all.iter().find(|s| !client.scopes.contains(s)) {
                    return Err(bad(format!(
                        "scope {unknown} is not registered for this client (registered: {})",
                        client.scopes.join(" ")
                    )));
                }
                Some(all)
            }
        };
        let types = match rules.authorization_details_types {
            None => None,
            Some(types) => {
                let configured = &self.config.authorization_details.types;
                if let Some(unknown) = types.iter().find(|t| !configured.contains(t)) {
                    return Err(bad(format!(
                        "authorization_details type {unknown} is not configured in [authorization_details] types"
                    )));
                }
                Some(dedup(types))
            }
        };
        if let Some(max) = rules.max_requested_expiry {
            let c = &self.config.ciba;
            if max < c.min_expires_in || max > c.max_expires_in {
                return Err(bad(format!(
                    "max_requested_expiry must be between {} and {} seconds",
                    c.min_expires_in, c.max_expires_in
                )));
            }
        }
        let now = self.now_ms();
        let policy = AccessPolicy {
            client_id: client.id.clone(),
            rules: PolicyRules {
                users,
                scopes,
                authorization_details_types: types,
                require_user_verification: rules.require_user_verification,
                max_requested_expiry: rules.max_requested_expiry,
                allow_parallel: rules.allow_parallel,
            },
            created_at: now,
            updated_at: now,
        };
        let stored = self
            .stores
            .policies
            .put_policy(&policy)
            .await?
            .ok_or_else(no_such_client)?;
        tracing::info!(client_id = %client.id, "access policy set");
        Ok(stored)
    }

    /// `GET /admin/v1/policies/{client_id}`, `admin policy show`.
    pub async fn policy_view(&self, client_id: &str) -> AuthResult<AccessPolicy> {
        if let Some(policy) = self.stores.policies.get_policy(client_id).await? {
            return Ok(policy);
        }
        match self.stores.clients.get_client(client_id).await? {
            Some(_) => Err(AuthError::NotFound(
                "this client has no access policy".into(),
            )),
            None => Err(no_such_client()),
        }
    }

    pub async fn list_policies(&self) -> AuthResult<PolicyList> {
        Ok(PolicyList {
            policies: self.stores.policies.list_policies().await?,
        })
    }

    pub async fn delete_policy(&self, client_id: &str) -> AuthResult<PolicyDeleted> {
        if !self.stores.policies.delete_policy(client_id).await? {
            return Err(match self.stores.clients.get_client(client_id).await? {
                Some(_) => AuthError::NotFound("this client has no access policy".into()),
                None => no_such_client(),
            });
        }
        tracing::info!(client_id, "access policy deleted");
        Ok(PolicyDeleted {
            client_id: client_id.to_owned(),
            deleted: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::testing::fixture;

    fn code(r: AuthResult<AccessPolicy>) -> Result<AccessPolicy, String> {
        r.map_err(|e| format!("{}: {e}", e.code()))
    }

    #[tokio::test]
    async fn input_is_checked_against_the_client_and_the_configuration() {
        let f = fixture().await;
        let id = f.client.id.clone();
        let set = |rules: PolicyRules| {
            let (f, id) = (&f, id.clone());
            async move { code(f.domain.set_policy(&id, rules).await) }
        };
        let err = set(PolicyRules {
            scopes: Some(vec!["phone".into()]),
            ..Default::default()
        })
        .await
        .unwrap_err();
        assert!(err.contains("scope phone is not registered"), "{err}");
        let err = set(PolicyRules {
            authorization_details_types: Some(vec!["other".into()]),
            ..Default::default()
        })
        .await
        .unwrap_err();
        assert!(err.contains("type other is not configured"), "{err}");
        for max in [9, 1801] {
            let err = set(PolicyRules {
                max_requested_expiry: Some(max),
                ..Default::default()
            })
            .await
            .unwrap_err();
            assert!(err.contains("between 10 and 1800"), "{err}");
        }
        for users in [
            UserRule::Subjects(vec![]),
            UserRule::Group(String::new()),
            UserRule::Claim {
                name: "tier".into(),
                value: "a\nb".into(),
            },
        ] {
            let err = set(PolicyRules {
                users,
                ..Default::default()
            })
            .await
            .unwrap_err();
            assert!(err.starts_with("invalid_request"), "{err}");
        }
        let err = code(f.domain.set_policy("nope", PolicyRules::default()).await).unwrap_err();
        assert_eq!(err, "not_found: no such client");

        let first = set(PolicyRules {
            scopes: Some(vec!["email email".into()]),
            users: UserRule::Subjects(vec!["a".into(), "a".into()]),
            ..Default::default()
        })
        .await
        .unwrap();
        assert_eq!(
            first.rules.scopes.as_deref(),
            Some(&["openid".to_owned(), "email".to_owned()][..])
        );
        assert_eq!(first.rules.users, UserRule::Subjects(vec!["a".into()]));
        f.clock.advance_secs(5);
        let second = set(PolicyRules::default()).await.unwrap();
        assert_eq!(second.created_at, first.created_at);
        assert_eq!(second.updated_at, first.created_at + 5000);
        assert_eq!(f.domain.policy_view(&id).await.unwrap(), second);
        assert_eq!(f.domain.list_policies().await.unwrap().policies, [second]);
        assert!(f.domain.delete_policy(&id).await.unwrap().deleted);
        assert_eq!(
            f.domain.policy_view(&id).await.unwrap_err().to_string(),
            "this client has no access policy"
        );
        assert_eq!(
            f.domain.delete_policy(&id).await.unwrap_err().code(),
            "not_found"
        );
        assert_eq!(
            f.domain.policy_view("nope").await.unwrap_err().to_string(),
            "no such client"
        );
    }
}
