//! Delivery to the outside world: client notifications (the ping/push outbox worker) and
//! authenticator push senders (APNs, FCM, Web Push).

pub mod devices;
pub mod outbox;
pub mod push;
