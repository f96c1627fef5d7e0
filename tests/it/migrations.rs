//! Migrations: up → down → up on both backends, and the start-up rules of spec §1.1.

use diesel::{Connection, PgConnection, SqliteConnection};
use diesel_migrations::MigrationHarness;

use crate::harness::{Backend, TestDb};
use webhooks::store::migrate;

#[test]
fn postgres_up_down_up() {
    let db = TestDb::new(Backend::Postgres);
    let mut conn = PgConnection::establish(&db.uri()).unwrap_or_else(|e| panic!("{e}"));
    migrate::run_postgres(&mut conn).unwrap_or_else(|e| panic!("{e}"));
    assert!(!conn.has_pending_migration(migrate::POSTGRES).unwrap_or(true));
    migrate::revert_all_postgres(&mut conn).unwrap_or_else(|e| panic!("{e}"));
    assert!(conn.has_pending_migration(migrate::POSTGRES).unwrap_or(false));
    migrate::run_postgres(&mut conn).unwrap_or_else(|e| panic!("{e}"));
    assert!(!conn.has_pending_migration(migrate::POSTGRES).unwrap_or(true));
}

#[test]
fn sqlite_up_down_up() {
    let db = TestDb::new(Backend::Sqlite);
    let mut conn = SqliteConnection::establish(&db.uri()).unwrap_or_else(|e| panic!("{e}"));
    migrate::run_sqlite(&mut conn).unwrap_or_else(|e| panic!("{e}"));
    assert!(!conn.has_pending_migration(migrate::SQLITE).unwrap_or(true));
    migrate::revert_all_sqlite(&mut conn).unwrap_or_else(|e| panic!("{e}"));
    assert!(conn.has_pending_migration(migrate::SQLITE).unwrap_or(false));
    migrate::run_sqlite(&mut conn).unwrap_or_else(|e| panic!("{e}"));
    assert!(!conn.has_pending_migration(migrate::SQLITE).unwrap_or(true));
}
