//! What `backchannel authenticator` prints: a challenge and a device as a person reads them,
//! and a challenge as `list --json` gives it.

use backchannel_authenticator::{DeviceInfo, PushRegistration, VerifiedChallenge};

pub(super) fn challenge_json(c: &VerifiedChallenge) -> serde_json::Value {
    serde_json::json!({
        "id": c.id,
        "client_name": c.claims.client_name,
        "binding_message": c.claims.binding_message,
        "scope": c.claims.scope,
        "authorization_details": c.claims.authorization_details,
        "expires_at": c.claims.exp,
    })
}

pub(super) fn show_challenge(c: &VerifiedChallenge, now: i64) {
    println!("Challenge {}", c.id);
    println!(
        "  from:     {} ({})",
        c.claims.client_name, c.claims.client_id
    );
    match &c.claims.binding_message {
        Some(m) => println!("  message:  {m}"),
        None => println!("  message:  (none)"),
    }
    println!("  scope:    {}", c.claims.scope);
    if let Some(acr) = &c.claims.acr_values {
        println!("  acr:      {acr}");
    }
    if let Some(d) = &c.claims.authorization_details {
        let pretty = serde_json::to_string_pretty(d).unwrap_or_else(|_| d.to_string());
        println!("  details:");
        for line in pretty.lines() {
            println!("    {line}");
        }
    }
    println!("  expires:  in {} s", (c.claims.exp - now).max(0));
}

pub(super) fn show_info(info: &DeviceInfo, server: &str) {
    println!("Device {}", info.device_id);
    println!("  name:     {}", info.name);
    println!("  server:   {server}");
    println!("  enrolled: {} (Unix seconds)", info.created_at);
    println!(
        "  status:   {}",
        if info.disabled { "disabled" } else { "active" }
    );
    let channels = push_channels(&info.push);
    if channels.is_empty() {
        println!("  push:     none (reached live or when it asks)");
    }
    for (i, line) in channels.iter().enumerate() {
        println!("  {:<9} {line}", if i == 0 { "push:" } else { "" });
    }
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
                "scope"
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
}
