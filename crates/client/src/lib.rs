//! A relying-party library for CIBA (OpenID Connect Client-Initiated Backchannel
//! Authentication Core 1.0), for Backchannel and any other CIBA server (Singpass, Okta,
//! oidc-provider):
//!
//! - **discovery** of the server's metadata (OpenID Connect Discovery and RFC 8414), cached
//!   for its `Cache-Control`, the issuer checked; its JWKS, refreshed on an unknown `kid`;
//! - **client authentication**: `client_secret_basic`, `client_secret_post`,
//!   `private_key_jwt` (ES256/384/512, PS256, RS256, EdDSA; keys from a JWK or a PEM file);
//! - the **backchannel authentication request** with every CIBA parameter, plain or as a
//!   signed request object;
//! - **polling** that honours `interval`, `slow_down` and `Retry-After`, stops at `expires_in`
//!   and can be cancelled; time injected through [`Clock`] and [`Sleeper`];
//! - **ping and push reception** (feature `receiver`): an axum router for the notification
//!   endpoint;
//! - **ID-token validation**: signature, `iss`, `aud`/`azp`, times with a configurable skew,
//!   `at_hash`, `rt_hash` and the `auth_req_id` claim of pushed tokens; encrypted ID tokens
//!   (ECDH-ES+A256KW, RSA-OAEP-256... with `backchannel_protocol::jose::jwe`) decrypted with the
//!   client's key.
//!
//! Errors from the server are [`ClientError::OAuth`]: an [`OAuthError`] with one
//! [`ErrorCode`] per code of RFC 6749 and CIBA Core, the server's description and its request
//! id.
//!
//! ```no_run
//! # async fn example() -> Result<(), backchannel_client::ClientError> {
//! use backchannel_client::{CibaClient, ClientAuth, ErrorCode, InitiateRequest};
//!
//! let client = CibaClient::discover(
//!     "https://id.example.com",
//!     "my-client",
//!     ClientAuth::SecretBasic("s3cret".into()),
//! )
//! .await?;
//! let started = client
//!     .initiate(&InitiateRequest {
//!         binding_message: Some("W4SCT".into()),
//!         ..InitiateRequest::for_login_hint("alice@example.com")
//!     })
//!     .await?;
//! match client.poll_until_done(&started).await {
//!     Ok(tokens) => {
//!         let claims = client.validate_token_response(&tokens).await?;
//!         println!("authenticated {:?}", claims.map(|c| c.sub));
//!     }
//!     Err(e) if e.code() == Some(&ErrorCode::AccessDenied) => println!("the user said no"),
//!     Err(e) => return Err(e),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! With a key file for `private_key_jwt` (the `kid` the server registered):
//!
//! ```
//! use backchannel_client::ClientAuth;
//! # let key = backchannel_protocol::jose::SigningKey::generate(
//! #     backchannel_protocol::jose::Algorithm::ES256).unwrap();
//! # let pem_text = backchannel_protocol::jose::pem::encode(
//! #     "PRIVATE KEY", &key.to_pkcs8_der().unwrap());
//! // let pem_text = std::fs::read_to_string("client-key.pem")?;
//! let auth = ClientAuth::private_key(&pem_text, None, Some("rp-key-2025")).unwrap();
//! assert_eq!(auth.method_name(), "private_key_jwt");
//! ```

mod auth;
mod ciba;
mod discovery;
mod error;
mod http;
mod id_token;
mod poll;
#[cfg(feature = "receiver")]
mod receiver;

pub use auth::{
    AssertionClaims, ClientAuth, client_assertion_claims, client_secret_basic_header,
    load_signing_key,
};
pub use ciba::{CibaClient, InitiateRequest, PollOutcome};
pub use discovery::{DEFAULT_CACHE_SECS, MIN_KEY_REFRESH_SECS, discover, discover_with};
pub use error::{ClientError, ErrorCode, OAuthError};
pub use http::{Exchange, Observer};
pub use id_token::{
    CLAIM_AUTH_REQ_ID, CLAIM_RT_HASH, DEFAULT_LEEWAY_SECS, IdTokenClaims, load_decryption_key,
};
pub use poll::{
    BoxFuture, DEFAULT_INTERVAL_SECS, ManualSleeper, PollOptions, PollProgress,
    SLOW_DOWN_STEP_SECS, Sleeper, TokioSleeper,
};
#[cfg(feature = "receiver")]
pub use receiver::{Notification, NotificationReceiver};

pub use backchannel_protocol::clock::{Clock, ManualClock, SystemClock};
pub use backchannel_protocol::jose::jwe::DecryptingKey;
pub use backchannel_protocol::jose::{Algorithm, Audience, SigningKey};
pub use backchannel_protocol::metadata::ProviderMetadata;
pub use backchannel_protocol::oauth::{BackchannelAuthResponse, TokenResponse};
