//! The integration suite: one binary, real PostgreSQL and SQLite, real HTTP on 127.0.0.1.

mod harness;
mod kafka;

mod cli;
mod config_api;
mod console;
mod crash;
mod deliveries_api;
mod delivery;
mod events;
mod migrations;
mod openapi;
mod replay;
mod retention;
mod sweep;
mod test_route;
mod writes;
