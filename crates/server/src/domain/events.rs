//! What a device's live event stream carries: its event log turned into `challenge` events
//! (with the server-signed challenge JWT, so the device need not fetch it) and
//! `challenge_closed` events (with the challenge's final state).

use serde::Serialize;

use super::Domain;
use super::device::CHALLENGE_ALG;
use super::error::{AuthError, AuthResult};
use super::model::{AuthRequestState, ChallengeState, Device, DeviceEventKind};

/// Events read from the log per round trip.
const BATCH: i64 = 100;

/// One event for the stream: its SSE id, name and JSON data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEvent {
    pub id: i64,
    pub kind: DeviceEventKind,
    pub data: String,
}

#[derive(Serialize)]
struct ChallengeData<'a> {
    challenge_id: &'a str,
    challenge: &'a str,
}

#[derive(Serialize)]
struct ClosedData<'a> {
    challenge_id: &'a str,
    state: ChallengeState,
}

impl Domain {
    /// The events after `after` for this device. A `challenge` event whose challenge is no
    /// longer pending is dropped (its `challenge_closed` follows); ids still advance.
    pub async fn device_events_after(
        &self,
        device: &Device,
        after: i64,
    ) -> AuthResult<(Vec<StreamEvent>, i64)> {
        let log = self
            .stores
            .events
            .device_events_since(&device.id, after, BATCH)
            .await?;
        let mut last = after;
        let mut out = Vec::with_capacity(log.len());
        let key = self.keys.signer(CHALLENGE_ALG)?;
        for event in log {
            last = event.seq;
            let Some((challenge, request)) = self
                .stores
                .requests
                .get_challenge(&event.challenge_id)
                .await?
            else {
                continue;
            };
            let data = match event.kind {
                DeviceEventKind::Challenge => {
                    let live = challenge.state == ChallengeState::Pending
                        && request.state == AuthRequestState::Pending
                        && self.now_ms() < request.expires_at;
                    let client = self.stores.clients.get_client(&request.client_id).await?;
                    let (true, Some(client)) = (live, client) else {
                        continue;
                    };
                    let jwt = self.challenge_jwt(&key, &challenge, &request, &client)?;
                    serde_json::to_string(&ChallengeData {
                        challenge_id: &challenge.id,
                        challenge: &jwt,
                    })
                }
                DeviceEventKind::ChallengeClosed => serde_json::to_string(&ClosedData {
                    challenge_id: &challenge.id,
                    state: challenge.state,
                }),
            }
            .map_err(AuthError::internal)?;
            out.push(StreamEvent {
                id: event.seq,
                kind: event.kind,
                data,
            });
        }
        Ok((out, last))
    }

    /// Where a new stream starts without `Last-Event-ID`: the device's newest event id, and
    /// every challenge pending now (as `challenge` events carrying that id).
    pub async fn device_stream_start(
        &self,
        device: &Device,
    ) -> AuthResult<(Vec<StreamEvent>, i64)> {
        let latest = self.stores.events.latest_device_event(&device.id).await?;
        let pending = self.list_device_challenges(device).await?;
        let mut out = Vec::with_capacity(pending.len());
        for c in pending {
            let data = serde_json::to_string(&ChallengeData {
                challenge_id: &c.id,
                challenge: &c.challenge,
            })
            .map_err(AuthError::internal)?;
            out.push(StreamEvent {
                id: latest,
                kind: DeviceEventKind::Challenge,
                data,
            });
        }
        Ok((out, latest))
    }

    /// Whether the device may still listen (not disabled meanwhile).
    pub async fn device_still_active(&self, device_id: &str) -> AuthResult<bool> {
        Ok(self
            .stores
            .devices
            .get_device(device_id)
            .await?
            .is_some_and(|d| !d.disabled))
    }
}
