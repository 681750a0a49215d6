//! Pure types and rules. Nothing here does IO or imports another module of the crate.

pub mod campaign;
pub mod contact;
pub mod credits;
pub mod delivery;
pub mod error;
pub mod failure;
#[cfg(test)]
pub mod fuzz;
pub mod links;
pub mod message;
pub mod optout;
pub mod phone;
pub mod render;
pub mod sms;
pub mod tenant;
pub mod time;
pub mod unsubscribe;

pub use error::{Error, Kind, Result};
