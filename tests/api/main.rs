//! Black-box tests: the real app on port 0, real HTTP, on SQLite and on PostgreSQL.

mod harness;

mod audience;
mod auth;
mod browser;
mod campaigns;
mod cli;
mod contacts;
mod crash;
mod delivery;
mod engine;
mod events;
mod fairness;
mod foundation;
mod fuzz;
mod holes;
mod import;
mod ledger;
mod limits;
mod observability;
mod openapi;
mod operations;
mod optout;
mod security;
mod senders;
mod soak;
mod web;
