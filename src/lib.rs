//! smscast: SMS campaigns for many stores. See ARCHITECTURE.md for the map.

pub mod app;
pub mod bench;
pub mod clock;
pub mod config;
pub mod demo;
pub mod domain;
pub mod engine;
pub mod faults;
pub mod http;
pub mod provider;
pub mod secrets;
pub mod soak;
pub mod store;
pub mod telemetry;
