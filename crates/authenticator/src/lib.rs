//! Device library for Backchannel authenticators (SPEC §5): enrolment with a key generated on
//! the device, the state file that keeps it, device-signed API calls, verification of the
//! server-signed challenges and signed decisions bound to what was shown.
//!
//! ```no_run
//! # async fn example() -> Result<(), backchannel_authenticator::AuthenticatorError> {
//! use backchannel_authenticator::{Decision, Device, DeviceState, enrol};
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
//! # Ok(())
//! # }
//! ```

mod clock;
mod device;
mod error;
mod jwt;
mod state;

pub use clock::{Clock, FixedClock, SystemClock};
pub use device::{Device, enrol, enrol_with};
pub use error::AuthenticatorError;
pub use jwt::{
    CheckedChallenge, VerifiedChallenge, device_auth_claims, sign_decision, sign_device_auth,
};
pub use state::DeviceState;

pub use backchannel_protocol::device::{
    ChallengeClaims, ChallengeEnvelope, Decision, DecisionClaims, DecisionResponse,
    PushRegistration,
};
