//! SQL types shared by both backends, so one `schema.rs` and one set of queries serve PostgreSQL
//! and SQLite: each type says how it is stored on each backend.

use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::{Array, Text, Timestamptz};
use diesel::sqlite::{Sqlite, SqliteValue};

use crate::domain::time::Timestamp;

/// A point in time: `TIMESTAMPTZ` on PostgreSQL, fixed-width RFC 3339 `TEXT` on SQLite.
#[derive(Debug, Clone, Copy, Default, diesel::sql_types::SqlType, diesel::query_builder::QueryId)]
#[diesel(postgres_type(oid = 1184, array_oid = 1185))]
#[diesel(sqlite_type(name = "Text"))]
pub struct Ts;

/// A list of strings: `VARCHAR[]` on PostgreSQL (bound as `text[]`), a JSON array on SQLite.
#[derive(Debug, Clone, Copy, Default, diesel::sql_types::SqlType, diesel::query_builder::QueryId)]
#[diesel(postgres_type(oid = 1009, array_oid = 1009))]
#[diesel(sqlite_type(name = "Text"))]
pub struct TextList;

/// Row value of a [`Ts`] column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, AsExpression, FromSqlRow)]
#[diesel(sql_type = Ts)]
pub struct DbTime(pub Timestamp);

/// Row value of a [`TextList`] column.
#[derive(Debug, Clone, PartialEq, Eq, AsExpression, FromSqlRow)]
#[diesel(sql_type = TextList)]
pub struct DbList(pub Vec<String>);

impl ToSql<Ts, Pg> for DbTime {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        let t = self.0.as_datetime();
        ToSql::<Timestamptz, Pg>::to_sql(&t, &mut out.reborrow())
    }
}

impl FromSql<Ts, Pg> for DbTime {
    fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
        let t: chrono::DateTime<chrono::Utc> = FromSql::<Timestamptz, Pg>::from_sql(bytes)?;
        Ok(DbTime(Timestamp::from_datetime(t)))
    }
}

impl ToSql<Ts, Sqlite> for DbTime {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(self.0.to_storage_text());
        Ok(IsNull::No)
    }
}

impl FromSql<Ts, Sqlite> for DbTime {
    fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        let s: String = FromSql::<Text, Sqlite>::from_sql(value)?;
        Ok(DbTime(Timestamp::parse_storage_text(&s)?))
    }
}

impl ToSql<TextList, Pg> for DbList {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        ToSql::<Array<Text>, Pg>::to_sql(&self.0, &mut out.reborrow())
    }
}

impl FromSql<TextList, Pg> for DbList {
    fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
        Ok(DbList(FromSql::<Array<Text>, Pg>::from_sql(bytes)?))
    }
}

impl ToSql<TextList, Sqlite> for DbList {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(serde_json::to_string(&self.0)?);
        Ok(IsNull::No)
    }
}

impl FromSql<TextList, Sqlite> for DbList {
    fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        let s: String = FromSql::<Text, Sqlite>::from_sql(value)?;
        Ok(DbList(serde_json::from_str(&s)?))
    }
}

/// Both representations order like time (SQLite's text is fixed-width), so MIN/MAX are valid.
impl diesel::sql_types::SqlOrd for Ts {}
