//! Wire types and JOSE shared by every side of Backchannel: the server, the relying-party
//! client library and the authenticator device library, and the clock they all read.

pub mod clock;
pub mod device;
pub mod jose;
pub mod metadata;
pub mod oauth;
