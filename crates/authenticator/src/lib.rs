//! Device library for Backchannel authenticators (SPEC §5): enrolment with a key generated on
//! the device, the state file that keeps it, device-signed API calls, verification of the
//! server-signed challenges, signed decisions bound to what was shown, the live event stream
//! and the device's own record (push registration, removal).
//!
//! ```no_run
//! # async fn example() -> Result<(), backchannel_authenticator::AuthenticatorError> {
//! use backchannel_authenticator::{Decision, Device, DeviceEvent, DeviceState, enrol};
//! use backchannel_protocol::jose::Algorithm;
//!
//! let device = enrol("https://id.example.com", "ENROL-CODE", Some("my phone"), Algorithm::ES256).await?;
//! device.state().save("device.json")?;
//!
//! let device = Device::new(DeviceState::load("device.json")?)?;
//! for challenge in device.list_challenges().await? {
//!     println!("{} asks: {:?}", challenge.claims.client_name, challenge.claims.binding_message);
//!     device.decide(&challenge, Decision::Approve, true).await?;
//! }
//!
//! // Or live, as challenges arrive; reconnect with `events.last_event_id()` to miss nothing.
//! let mut events = device.events(None).await?;
//! while let Some(event) = events.next().await? {
//!     match event {
//!         DeviceEvent::Challenge(c) => println!("{} asks", c.claims.client_name),
//!         DeviceEvent::Closed { challenge_id, state } => {
//!             println!("{challenge_id}: {}", state.as_str())
//!         }
//!         DeviceEvent::Rejected { error, .. } => eprintln!("not shown: {error}"),
//!     }
//! }
//! # Ok(())
//! # }
//! ```

mod device;
mod error;
mod events;
mod jwt;
mod sse;
mod state;

pub use device::{Device, default_http_client, enrol, enrol_with};
pub use error::AuthenticatorError;
pub use events::{DEFAULT_IDLE_TIMEOUT, DeviceEvent, EventStream};
pub use jwt::{
    CheckedChallenge, VerifiedChallenge, device_auth_claims, sign_decision, sign_decision_as,
    sign_device_auth,
};
pub use state::DeviceState;

pub use backchannel_protocol::clock::{Clock, ManualClock, SystemClock};
pub use backchannel_protocol::device::{
    ChallengeClaims, ChallengeEnvelope, ChallengeState, Decision, DecisionClaims, DecisionResponse,
    DeviceInfo, PushRegistration, WebPushKeys, WebPushSubscription,
};
