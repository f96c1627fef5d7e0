//! The integration suite: one binary, real PostgreSQL and SQLite, real HTTP on 127.0.0.1.

mod harness;
mod kafka;

mod auth;
mod cli;
mod config_api;
mod console;
mod crash;
mod deliveries_api;
mod delivery;
mod events;
mod liveness;
mod migrations;
mod openapi;
mod outages;
mod replay;
mod retention;
mod secret_overlap;
mod shutdown;
mod signature_headers;
mod sweep;
mod test_route;
mod traces;
mod writes;
