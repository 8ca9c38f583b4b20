//! The PostgreSQL side: connections, the target catalog, and binary COPY.
//!
//! thaw maps every source column to the target column's *actual* type, read
//! from the catalog ([`table_columns`]), and streams rows with binary COPY
//! ([`encode`]).

pub mod encode;

use tokio_postgres::{Client, NoTls};

use crate::config::PostgresSettings;
use crate::error::{from_postgres, Error, ErrorKind, Result};

/// A PostgreSQL type thaw can write, as read from `pg_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PgType {
    /// `bool`
    Bool,
    /// `int2`
    Int2,
    /// `int4`
    Int4,
    /// `int8`
    Int8,
    /// `float4` (`real`)
    Float4,
    /// `float8` (`double precision`)
    Float8,
    /// `numeric(p,s)`
    Numeric,
    /// `text`
    Text,
    /// `varchar(n)`
    Varchar,
    /// `bpchar` (`char(n)`)
    Bpchar,
    /// `date`
    Date,
    /// `time`
    Time,
    /// `timestamp` (without time zone)
    Timestamp,
    /// `timestamptz`
    Timestamptz,
    /// `uuid`
    Uuid,
    /// `json`
    Json,
    /// `jsonb`
    Jsonb,
    /// `bytea`
    Bytea,
}

impl PgType {
    /// Map a `pg_type.typname` to a supported type.
    pub fn from_typname(name: &str) -> Option<PgType> {
        Some(match name {
            "bool" => PgType::Bool,
            "int2" => PgType::Int2,
            "int4" => PgType::Int4,
            "int8" => PgType::Int8,
            "float4" => PgType::Float4,
            "float8" => PgType::Float8,
            "numeric" => PgType::Numeric,
            "text" => PgType::Text,
            "varchar" => PgType::Varchar,
            "bpchar" => PgType::Bpchar,
            "date" => PgType::Date,
            "time" => PgType::Time,
            "timestamp" => PgType::Timestamp,
            "timestamptz" => PgType::Timestamptz,
            "uuid" => PgType::Uuid,
            "json" => PgType::Json,
            "jsonb" => PgType::Jsonb,
            "bytea" => PgType::Bytea,
            _ => return None,
        })
    }
}

/// One column of a target table, as the catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TargetColumn {
    /// Column name, exact case.
    pub name: String,
    /// Writable type.
    pub pg_type: PgType,
    /// `pg_type.typname`, for messages.
    pub type_name: String,
    /// Maximum length in characters for `varchar(n)`/`char(n)`.
    pub char_max_length: Option<i32>,
    /// Declared precision of `numeric(p,s)`.
    pub numeric_precision: Option<i32>,
    /// Declared scale of `numeric(p,s)`.
    pub numeric_scale: Option<i32>,
    /// Whether NULL is allowed.
    pub nullable: bool,
}

/// Open a connection to `database` with `settings`.
///
/// Errors: [`ErrorKind::AuthFailed`] for a rejected password,
/// [`ErrorKind::Unreachable`] when nothing answers at host:port,
/// [`ErrorKind::SchemaMismatch`] when the database does not exist.
pub async fn connect(settings: &PostgresSettings, database: &str) -> Result<Client> {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(&settings.host)
        .port(settings.port.unwrap_or(5432))
        .user(&settings.user)
        .dbname(database)
        .application_name("thaw")
        .connect_timeout(std::time::Duration::from_secs(15));
    if let Some(pw) = &settings.password {
        cfg.password(pw.expose());
    }
    let where_ = format!("PostgreSQL {}@{}:{}/{}", settings.user, settings.host, settings.port.unwrap_or(5432), database);
    let (client, connection) = cfg.connect(NoTls).await.map_err(|e| {
        let err = from_postgres(e, format!("cannot connect to {where_}"));
        let hint = match err.kind {
            ErrorKind::AuthFailed => " Check postgres.user and postgres.password.",
            ErrorKind::Unreachable => " Check postgres.host/port and that the server is running.",
            ErrorKind::SchemaMismatch => " Create the database or fix target_pg_database.",
            _ => "",
        };
        Error::new(err.kind, format!("{}.{hint}", err.message))
    })?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "postgres connection closed");
        }
    });
    // Bulk-load friendly session settings (safe: every chunk commits explicitly).
    client
        .batch_execute("SET synchronous_commit = off; SET lock_timeout = '60s'; SET idle_in_transaction_session_timeout = '15min'")
        .await
        .map_err(|e| from_postgres(e, format!("configuring session on {where_}")))?;
    Ok(client)
}

/// Read the columns of `schema.table` in ordinal order.
///
/// Errors: [`ErrorKind::SchemaMismatch`] when the table does not exist;
/// [`ErrorKind::TypeUnsupported`] naming each column whose type thaw cannot write.
pub async fn table_columns(client: &Client, schema: &str, table: &str) -> Result<Vec<TargetColumn>> {
    let rows = client
        .query(
            "SELECT a.attname, t.typname, \
                    CASE WHEN t.typname IN ('varchar','bpchar') AND a.atttypmod > 0 THEN a.atttypmod - 4 END, \
                    CASE WHEN t.typname = 'numeric' AND a.atttypmod > 0 THEN ((a.atttypmod - 4) >> 16) & 65535 END, \
                    CASE WHEN t.typname = 'numeric' AND a.atttypmod > 0 THEN (a.atttypmod - 4) & 65535 END, \
                    NOT a.attnotnull \
             FROM pg_attribute a \
             JOIN pg_class c ON c.oid = a.attrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_type t ON t.oid = a.atttypid \
             WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum",
            &[&schema, &table],
        )
        .await
        .map_err(|e| from_postgres(e, format!("reading columns of {schema}.{table}")))?;
    if rows.is_empty() {
        return Err(Error::new(
            ErrorKind::SchemaMismatch,
            format!("target table {schema}.{table} does not exist in PostgreSQL. Create it (schema/ migrations create the standard tables) or fix 'target' / 'target_pg_schema' in the config."),
        ));
    }
    let mut out = Vec::with_capacity(rows.len());
    let mut unsupported = Vec::new();
    for r in rows {
        let name: String = r.get(0);
        let typname: String = r.get(1);
        match PgType::from_typname(&typname) {
            Some(pg_type) => out.push(TargetColumn {
                name,
                pg_type,
                type_name: typname,
                char_max_length: r.get(2),
                numeric_precision: r.get(3),
                numeric_scale: r.get(4),
                nullable: r.get(5),
            }),
            None => unsupported.push(format!("\"{name}\" ({typname})")),
        }
    }
    if !unsupported.is_empty() {
        return Err(Error::new(
            ErrorKind::TypeUnsupported,
            format!("target table {schema}.{table} has column(s) of a type thaw cannot write: {}. Change the column type or leave the column out of the source.", unsupported.join(", ")),
        ));
    }
    Ok(out)
}

/// Quote a PostgreSQL identifier.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quoted `"schema"."table"`.
pub fn qualified(schema: &str, table: &str) -> String {
    format!("{}.{}", ident(schema), ident(table))
}
