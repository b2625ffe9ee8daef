//! Time as a parameter. The domain, the store and the push senders read the workspace's one
//! [`Clock`], defined in the protocol crate so that the client and authenticator libraries
//! share it.

pub use backchannel_protocol::clock::{Clock, ManualClock, SystemClock};
