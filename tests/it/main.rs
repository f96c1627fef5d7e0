//! The integration suite: one binary, real PostgreSQL and SQLite, real HTTP on 127.0.0.1.

mod harness;

mod cli;
mod config_api;
mod migrations;
mod openapi;
mod test_route;
