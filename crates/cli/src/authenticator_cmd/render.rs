//! What `backchannel authenticator` prints: the text of each command for a person, and a
//! challenge as `list --json` gives it. The commands choose between the two through
//! [`crate::output::Output`].

use std::fmt::{self, Write as _};
use std::path::Path;

use backchannel_authenticator::{Device, DeviceInfo, PushRegistration, VerifiedChallenge};

/// A challenge as `list --json` gives it.
pub(super) fn challenge_json(c: &VerifiedChallenge) -> serde_json::Value {
    serde_json::json!({
        "id": c.id,
        "client_name": c.claims.client_name,
        "binding_message": c.claims.binding_message,
        "scope": c.claims.scope,
        "authorization_details": c.claims.authorization_details,
        "expires_at": c.claims.exp,
        "uv_required": c.claims.uv_required,
    })
}

/// The text of `list`: every pending challenge, or a line saying there is none.
pub(super) fn challenges(w: &mut String, list: &[VerifiedChallenge], now: i64) -> fmt::Result {
    if list.is_empty() {
        return writeln!(w, "No pending challenges.");
    }
    for c in list {
        challenge(w, c, now)?;
    }
    Ok(())
}

/// A challenge as the user decides on it: who asks, the binding message, what for, how long.
pub(super) fn challenge(w: &mut String, c: &VerifiedChallenge, now: i64) -> fmt::Result {
    writeln!(w, "Challenge {}", c.id)?;
    writeln!(
        w,
        "  from:     {} ({})",
        c.claims.client_name, c.claims.client_id
    )?;
    match &c.claims.binding_message {
        Some(m) => writeln!(w, "  message:  {m}")?,
        None => writeln!(w, "  message:  (none)")?,
    }
    writeln!(w, "  scope:    {}", c.claims.scope)?;
    if let Some(acr) = &c.claims.acr_values {
        writeln!(w, "  acr:      {acr}")?;
    }
    if let Some(d) = &c.claims.authorization_details {
        let pretty = serde_json::to_string_pretty(d).unwrap_or_else(|_| d.to_string());
        writeln!(w, "  details:")?;
        for line in pretty.lines() {
            writeln!(w, "    {line}")?;
        }
    }
    if c.claims.uv_required {
        writeln!(
            w,
            "  verify:   this request requires you to verify it's you (approve with --user-verified)"
        )?;
    }
    writeln!(w, "  expires:  in {} s", (c.claims.exp - now).max(0))
}

/// The line `approve` and `deny` print for each challenge they decided.
pub(super) fn decided(state: &str, c: &VerifiedChallenge) -> String {
    format!(
        "{state} challenge {} from {}{}",
        c.id,
        c.claims.client_name,
        c.claims
            .binding_message
            .as_deref()
            .map(|m| format!(" ({m})"))
            .unwrap_or_default()
    )
}

/// The text of `enrol`.
pub(super) fn enrolled(w: &mut String, device: &Device, alg: &str, state: &Path) -> fmt::Result {
    writeln!(
        w,
        "Enrolled device {} with {} ({alg} key); state saved to {}",
        device.device_id(),
        device.state().issuer,
        state.display()
    )
}

/// The text of `push-update`: the device as it now is.
pub(super) fn push_updated(w: &mut String, info: &DeviceInfo, server: &str) -> fmt::Result {
    writeln!(w, "Push channels of device {} updated.", info.device_id)?;
    device(w, info, server)
}

/// The text of `remove`.
pub(super) fn removed(w: &mut String, device_id: &str, state: &Path) -> fmt::Result {
    writeln!(
        w,
        "Device {device_id} removed: the server no longer accepts its key, and {} can be deleted.",
        state.display()
    )
}

/// The text of `show`: the device as the server knows it, reached at `server`.
pub(super) fn device(w: &mut String, info: &DeviceInfo, server: &str) -> fmt::Result {
    writeln!(w, "Device {}", info.device_id)?;
    writeln!(w, "  name:     {}", info.name)?;
    writeln!(w, "  server:   {server}")?;
    writeln!(w, "  enrolled: {} (Unix seconds)", info.created_at)?;
    writeln!(
        w,
        "  status:   {}",
        if info.disabled { "disabled" } else { "active" }
    )?;
    let channels = push_channels(&info.push);
    if channels.is_empty() {
        writeln!(w, "  push:     none (reached live or when it asks)")?;
    }
    for (i, line) in channels.iter().enumerate() {
        writeln!(w, "  {:<9} {line}", if i == 0 { "push:" } else { "" })?;
    }
    Ok(())
}

/// One line per registered channel; a dead one (the push service said it is gone) says so.
fn push_channels(push: &PushRegistration) -> Vec<String> {
    let dead = |name: &str| {
        if push.disabled.iter().any(|d| d == name) {
            "  (dead: register it again)"
        } else {
            ""
        }
    };
    let short = |t: &str| {
        if t.chars().count() > 24 {
            format!("{}…", t.chars().take(24).collect::<String>())
        } else {
            t.to_owned()
        }
    };
    let mut lines = Vec::new();
    if let Some(t) = &push.apns_token {
        lines.push(format!("APNs     {}{}", short(t), dead("apns")));
    }
    if let Some(t) = &push.fcm_token {
        lines.push(format!("FCM      {}{}", short(t), dead("fcm")));
    }
    if let Some(w) = &push.webpush {
        lines.push(format!("Web Push {}{}", w.endpoint, dead("webpush")));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authenticator_cmd::tests::challenge;

    #[test]
    fn list_json_has_the_documented_fields() {
        let v = challenge_json(&challenge("a", Some("W4SCT")));
        let mut keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "authorization_details",
                "binding_message",
                "client_name",
                "expires_at",
                "id",
                "scope",
                "uv_required"
            ]
        );
        assert_eq!(v["expires_at"], 100);
    }

    #[test]
    fn push_channels_are_listed_with_dead_ones_marked() {
        let push = PushRegistration {
            apns_token: Some("ab".repeat(32)),
            fcm_token: Some("short".into()),
            webpush: None,
            disabled: vec!["fcm".into()],
        };
        let lines = push_channels(&push);
        assert_eq!(lines.len(), 2);
        assert!(
            lines[0].starts_with("APNs") && lines[0].ends_with('…'),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].contains("short") && lines[1].contains("dead"),
            "{}",
            lines[1]
        );
        assert!(push_channels(&PushRegistration::default()).is_empty());
    }

    #[test]
    fn a_challenge_reads_as_the_user_decides_on_it() {
        let mut c = challenge("ch-1", Some("W4SCT"));
        c.claims.acr_values = Some("urn:x:loa:2".into());
        c.claims.authorization_details = Some(serde_json::json!([{"type": "payment"}]));
        let mut w = String::new();
        super::challenge(&mut w, &c, 40).unwrap();
        assert_eq!(
            w,
            "Challenge ch-1\n  from:     Bank (c)\n  message:  W4SCT\n  scope:    openid\n  \
             acr:      urn:x:loa:2\n  details:\n    [\n      {\n        \"type\": \"payment\"\n      \
             }\n    ]\n  expires:  in 60 s\n"
        );
        let mut w = String::new();
        challenges(&mut w, &[challenge("ch-2", None)], 500).unwrap();
        assert_eq!(
            w,
            "Challenge ch-2\n  from:     Bank (c)\n  message:  (none)\n  scope:    openid\n  \
             expires:  in 0 s\n",
            "an expired challenge says 0 s, never a negative time"
        );
        let mut uv = challenge("ch-3", None);
        uv.claims.uv_required = true;
        let mut w = String::new();
        super::challenge(&mut w, &uv, 0).unwrap();
        assert!(
            w.contains("  verify:   this request requires you to verify it's you"),
            "{w}"
        );
        assert_eq!(challenge_json(&uv)["uv_required"], true);
        let mut w = String::new();
        challenges(&mut w, &[], 0).unwrap();
        assert_eq!(w, "No pending challenges.\n");
    }

    #[test]
    fn a_decision_names_the_challenge_its_client_and_message() {
        assert_eq!(
            decided("approved", &challenge("a", Some("W4SCT"))),
            "approved challenge a from Bank (W4SCT)"
        );
        assert_eq!(
            decided("denied", &challenge("b", None)),
            "denied challenge b from Bank"
        );
    }

    #[test]
    fn a_device_shows_its_channels_one_a_line_under_push() {
        let mut info = DeviceInfo {
            device_id: "dev-1".into(),
            name: "phone".into(),
            push: PushRegistration {
                apns_token: None,
                fcm_token: Some("fcm:1".into()),
                webpush: Some(backchannel_authenticator::WebPushSubscription {
                    endpoint: "https://push.example/s/1".into(),
                    keys: backchannel_authenticator::WebPushKeys {
                        p256dh: "BP".into(),
                        auth: "AU".into(),
                    },
                }),
                disabled: vec!["webpush".into()],
            },
            disabled: false,
            created_at: 1_700_000_000,
        };
        let mut w = String::new();
        push_updated(&mut w, &info, "http://node-b:8080").unwrap();
        assert_eq!(
            w,
            "Push channels of device dev-1 updated.\nDevice dev-1\n  name:     phone\n  \
             server:   http://node-b:8080\n  enrolled: 1700000000 (Unix seconds)\n  \
             status:   active\n  push:     FCM      fcm:1\n            \
             Web Push https://push.example/s/1  (dead: register it again)\n"
        );
        info.push = PushRegistration::default();
        info.disabled = true;
        let mut w = String::new();
        device(&mut w, &info, "http://x").unwrap();
        assert!(
            w.ends_with("  status:   disabled\n  push:     none (reached live or when it asks)\n"),
            "{w}"
        );
    }
}
