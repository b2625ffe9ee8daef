//! Device management (issue: reaching the user's devices): a device reads and changes its own
//! push registration and removes itself; operators list a user's devices and disable one.
//! Disabling closes the device's pending challenges at once.

use backchannel_protocol::device::{DeviceInfo, PushRegistration};

use super::Domain;
use super::error::{AuthError, AuthResult};
use super::model::Device;

pub fn device_info(d: &Device) -> DeviceInfo {
    DeviceInfo {
        device_id: d.id.clone(),
        name: d.name.clone(),
        push: d.push.clone(),
        disabled: d.disabled,
        created_at: d.created_at.div_euclid(1000),
    }
}

/// A registration as a device may send it: APNs tokens are hex, FCM tokens printable, a Web
/// Push subscription an https URL (http only where outbound calls may use it) with its keys.
/// The server-kept `disabled` list is reset.
pub fn check_push_registration(
    push: &PushRegistration,
    allow_http: bool,
) -> AuthResult<PushRegistration> {
    let bad = |m: &str| AuthError::invalid_request(m.to_owned());
    if let Some(t) = &push.apns_token
        && (t.is_empty() || t.len() > 200 || !t.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(bad("apns_token must be the device token in hex"));
    }
    if let Some(t) = &push.fcm_token
        && (t.is_empty() || t.len() > 4096 || !t.bytes().all(|b| b.is_ascii_graphic()))
    {
        return Err(bad("fcm_token must be 1 to 4096 printable characters"));
    }
    if let Some(sub) = &push.webpush {
        crate::outbound::check_shape(&sub.endpoint, allow_http)
            .map_err(|m| bad(&format!("webpush endpoint {m}")))?;
        let b64 = |s: &str| backchannel_protocol::jose::b64::decode(s.trim_end_matches('=')).ok();
        if b64(&sub.keys.p256dh).is_none_or(|k| k.len() != 65)
            || b64(&sub.keys.auth).is_none_or(|k| k.len() != 16)
        {
            return Err(bad(
                "webpush keys must be a P-256 public key (p256dh) and a 16-byte auth secret, base64url",
            ));
        }
    }
    Ok(PushRegistration {
        disabled: Vec::new(),
        ..push.clone()
    })
}

impl Domain {
    /// `PUT /device/v1/device/push`: a device replaces its push registration.
    pub async fn update_device_push(
        &self,
        device: &Device,
        push: &PushRegistration,
    ) -> AuthResult<DeviceInfo> {
        let push = check_push_registration(push, self.config.outbound.allow_http)?;
        if !self
            .stores
            .devices
            .set_device_push(&device.id, &push)
            .await?
        {
            return Err(AuthError::NotFound("no such device".into()));
        }
        tracing::info!(device_id = %device.id, "device push registration updated");
        Ok(device_info(&Device {
            push,
            ..device.clone()
        }))
    }

    /// Marks one push channel of a device dead (the push service said so). The device stays
    /// active: it can still be reached live or when it asks.
    pub async fn disable_push_channel(&self, device_id: &str, channel: &str) -> AuthResult<()> {
        let Some(device) = self.stores.devices.get_device(device_id).await? else {
            return Ok(());
        };
        if device.push.disabled.iter().any(|c| c == channel) {
            return Ok(());
        }
        let mut push = device.push;
        push.disabled.push(channel.to_owned());
        self.stores
            .devices
            .set_device_push(device_id, &push)
            .await?;
        tracing::info!(
            device_id,
            channel,
            "push registration disabled: the push service reports it gone"
        );
        Ok(())
    }

    /// Disables a device (it removes itself, or an operator does): its pending challenges
    /// close at once and it can no longer call the device API.
    pub async fn disable_device(&self, device_id: &str) -> AuthResult<()> {
        if !self
            .stores
            .devices
            .set_device_disabled(device_id, true, self.now_ms())
            .await?
        {
            return Err(AuthError::NotFound("no such device".into()));
        }
        self.notifier.device_changed(device_id);
        tracing::info!(device_id, "device disabled");
        Ok(())
    }

    /// Every device of a user, disabled ones included.
    pub async fn list_user_devices(&self, sub: &str) -> AuthResult<Vec<DeviceInfo>> {
        if self.stores.users.get_user(sub).await?.is_none() {
            return Err(AuthError::NotFound("no such user".into()));
        }
        Ok(self
            .stores
            .devices
            .list_devices(sub)
            .await?
            .iter()
            .map(device_info)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use backchannel_protocol::device::{WebPushKeys, WebPushSubscription};
    use backchannel_protocol::jose::b64;

    use super::*;

    fn webpush(endpoint: &str, p256dh_len: usize) -> PushRegistration {
        PushRegistration {
            webpush: Some(WebPushSubscription {
                endpoint: endpoint.into(),
                keys: WebPushKeys {
                    p256dh: b64::encode(&vec![4; p256dh_len]),
                    auth: b64::encode(&[7; 16]),
                },
            }),
            ..Default::default()
        }
    }

    #[test]
    fn registrations_are_checked_and_the_disabled_list_reset() {
        let ok = PushRegistration {
            apns_token: Some("ab12".into()),
            disabled: vec!["apns".into()],
            ..Default::default()
        };
        assert!(
            check_push_registration(&ok, false)
                .unwrap()
                .disabled
                .is_empty()
        );
        let bad_apns = PushRegistration {
            apns_token: Some("not hex".into()),
            ..Default::default()
        };
        assert!(check_push_registration(&bad_apns, false).is_err());
        assert!(check_push_registration(&webpush("https://push.example/x", 65), false).is_ok());
        assert!(check_push_registration(&webpush("http://push.example/x", 65), false).is_err());
        assert!(check_push_registration(&webpush("https://push.example/x", 33), false).is_err());
    }
}
