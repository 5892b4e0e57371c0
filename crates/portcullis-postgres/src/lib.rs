//! PostgreSQL for Portcullis: the client handshake, the upstream login, cancel routing and the relay.
//!
//! This crate translates between the wire protocol and the gateway's vocabulary; it never decides who
//! may do what. The binary calls [`handshake::accept`], verifies the token, calls [`upstream::connect`],
//! then [`session::open`] and [`relay::run`].

pub mod cancel;
pub mod catalog;
pub mod classify;
pub mod handshake;
pub mod inspect;
pub mod io;
pub mod lookup;
pub mod mask;
pub mod relay;
pub mod results;
pub mod session;
pub mod stream;
pub mod upstream;
pub mod wire;
