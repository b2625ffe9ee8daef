//! Relying-party library for Backchannel (and any CIBA Core 1.0 server): discovery, client
//! authentication (`client_secret_basic`, `client_secret_post`, `private_key_jwt`), the
//! backchannel authentication request, token polling in poll mode and ID-token validation.
//!
//! ```no_run
//! # async fn example() -> Result<(), backchannel_client::ClientError> {
//! use backchannel_client::{CibaClient, ClientAuth, InitiateRequest, discover};
//!
//! let metadata = discover("https://id.example.com").await?;
//! let client = CibaClient::new(metadata, "my-client", ClientAuth::SecretBasic("s3cret".into()));
//! let started = client
//!     .initiate(&InitiateRequest::for_login_hint("alice@example.com"))
//!     .await?;
//! let tokens = client
//!     .poll_until_done(&started.auth_req_id, started.interval.unwrap_or(5), started.expires_in)
//!     .await?;
//! if let Some(id_token) = &tokens.id_token {
//!     let claims = client.validate_id_token(id_token).await?;
//!     println!("authenticated {}", claims.sub);
//! }
//! # Ok(())
//! # }
//! ```

mod auth;
mod ciba;
mod error;
mod id_token;

pub use auth::{AssertionClaims, ClientAuth, client_assertion_claims, client_secret_basic_header};
pub use ciba::{CibaClient, InitiateRequest, PollOutcome, discover, discover_with};
pub use error::ClientError;
pub use id_token::IdTokenClaims;

pub use backchannel_protocol::clock::{Clock, ManualClock, SystemClock};
pub use backchannel_protocol::jose::Audience;
pub use backchannel_protocol::metadata::ProviderMetadata;
pub use backchannel_protocol::oauth::{BackchannelAuthResponse, ErrorResponse, TokenResponse};
