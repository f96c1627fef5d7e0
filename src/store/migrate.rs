//! Embedded migrations, one directory per backend (`migrations/postgres`, `migrations/sqlite`).

use diesel::pg::PgConnection;
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, RunQueryDsl};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::StoreError;

pub const POSTGRES: EmbeddedMigrations = embed_migrations!("migrations/postgres");
pub const SQLITE: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

fn failed(e: impl std::fmt::Display) -> StoreError {
    StoreError::Migration(e.to_string())
}

pub fn run_postgres(conn: &mut PgConnection) -> Result<(), StoreError> {
    // Several processes may start at once against a fresh database; an advisory lock makes the
    // second wait for the first instead of failing on "relation already exists".
    diesel::sql_query("SELECT pg_advisory_lock(7283419)").execute(conn)?;
    let result = conn.run_pending_migrations(POSTGRES).map(|_| ()).map_err(failed);
    diesel::sql_query("SELECT pg_advisory_unlock(7283419)").execute(conn)?;
    result
}

pub fn postgres_pending(conn: &mut PgConnection) -> Result<bool, StoreError> {
    conn.has_pending_migration(POSTGRES).map_err(failed)
}

pub fn run_sqlite(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    conn.run_pending_migrations(SQLITE).map(|_| ()).map_err(failed)
}

/// Reverts every migration (used by the up → down → up test).
pub fn revert_all_postgres(conn: &mut PgConnection) -> Result<(), StoreError> {
    conn.revert_all_migrations(POSTGRES).map(|_| ()).map_err(failed)
}

/// Reverts every migration (used by the up → down → up test).
pub fn revert_all_sqlite(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    conn.revert_all_migrations(SQLITE).map(|_| ()).map_err(failed)
}

/// `webhooks migrate` on PostgreSQL: creates the target database when it does not exist
/// (connecting to the server's `postgres` database, like the reference), then migrates.
pub fn migrate_postgres(uri: &str) -> Result<(), StoreError> {
    let mut conn = match PgConnection::establish(uri) {
        Ok(conn) => conn,
        Err(e) if e.to_string().contains("does not exist") => {
            create_database(uri)?;
            PgConnection::establish(uri)?
        }
        Err(e) => return Err(e.into()),
    };
    run_postgres(&mut conn)
}

fn create_database(uri: &str) -> Result<(), StoreError> {
    let mut url = url::Url::parse(uri).map_err(failed)?;
    let name = url.path().trim_start_matches('/').to_owned();
    if name.is_empty() {
        return Err(StoreError::Migration(
            "the PostgreSQL URI names no database".to_owned(),
        ));
    }
    url.set_path("/postgres");
    let mut admin = PgConnection::establish(url.as_str())?;
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    diesel::sql_query(format!("CREATE DATABASE {quoted}")).execute(&mut admin)?;
    tracing::info!(database = %name, "created database");
    Ok(())
}
