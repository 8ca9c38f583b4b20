//! Rendering a [`ChunkSpec`] as a SQL boolean expression, in Snowflake's
//! dialect (the chunk's query) or PostgreSQL's (the same rows in the target).
//!
//! Identifiers are always quoted and literals escaped ([`crate::source::sql`]
//! for Snowflake, [`crate::sink::ident`] and standard-conforming strings for
//! PostgreSQL). Text keys compare in code-point order in both: Snowflake's
//! default, `COLLATE "C"` in PostgreSQL. Date keys compare by their day,
//! `CAST(k AS DATE)`; a PostgreSQL `timestamptz` casts in the session's
//! `TimeZone`, Snowflake's `TIMESTAMP_TZ` in its own offset, so a PostgreSQL
//! rendering of a zoned date range is exact only in UTC sessions.

use crate::sink;
use crate::source::sql;
use crate::sync::chunk::{ChunkSpec, KeyColumn, KeyKind, KeyValue};

/// The SQL dialect to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Snowflake (the source).
    Snowflake,
    /// PostgreSQL (the target).
    Postgres,
}

/// `spec` as one boolean expression (never empty; `TRUE` for every row).
pub fn render(spec: &ChunkSpec, dialect: Dialect) -> String {
    match spec {
        ChunkSpec::All => "TRUE".into(),
        ChunkSpec::NumericRange { column, from, to, with_nulls } => {
            let k = key(column, dialect);
            or_null(range(&k, from.map(|v| v.to_string()), to.map(|v| v.to_string())), column, *with_nulls, dialect)
        }
        ChunkSpec::DateRange { column, from, to, with_nulls } => {
            let k = key(column, dialect);
            let day = |d: chrono::NaiveDate| literal(&KeyValue::Day(d), dialect);
            or_null(range(&k, from.map(day), to.map(day)), column, *with_nulls, dialect)
        }
        ChunkSpec::KeysetRange { column, from, to, with_nulls } => {
            let k = key(column, dialect);
            let text = |t: &String| literal(&KeyValue::Text(t.clone()), dialect);
            or_null(range(&k, from.as_ref().map(text), to.as_ref().map(text)), column, *with_nulls, dialect)
        }
        ChunkSpec::Values { column, values } => {
            format!("{} IN ({})", key(column, dialect), list(values, dialect))
        }
        ChunkSpec::OtherValues { values, with_nulls: true, .. } if values.is_empty() => "TRUE".into(),
        ChunkSpec::OtherValues { column, values, with_nulls: false } if values.is_empty() => format!("{} IS NOT NULL", ident(&column.name, dialect)),
        ChunkSpec::OtherValues { column, values, with_nulls: false } => {
            let k = key(column, dialect);
            format!("{k} IS NOT NULL AND {k} NOT IN ({})", list(values, dialect))
        }
        ChunkSpec::OtherValues { column, values, with_nulls: true } => {
            let k = key(column, dialect);
            format!("({k} IS NULL OR {k} NOT IN ({}))", list(values, dialect))
        }
        ChunkSpec::Nulls { column } => format!("{} IS NULL", ident(&column.name, dialect)),
        ChunkSpec::Within { outer, inner } => format!("({}) AND ({})", render(outer, dialect), render(inner, dialect)),
    }
}

/// `(r OR k IS NULL)` when the chunk also takes NULL keys.
fn or_null(r: String, column: &KeyColumn, with_nulls: bool, dialect: Dialect) -> String {
    if with_nulls {
        format!("({r} OR {} IS NULL)", ident(&column.name, dialect))
    } else {
        r
    }
}

/// `k >= from AND k < to`, either side optional; `k IS NOT NULL` with neither.
fn range(k: &str, from: Option<String>, to: Option<String>) -> String {
    match (from, to) {
        (Some(f), Some(t)) => format!("{k} >= {f} AND {k} < {t}"),
        (Some(f), None) => format!("{k} >= {f}"),
        (None, Some(t)) => format!("{k} < {t}"),
        (None, None) => format!("{k} IS NOT NULL"),
    }
}

fn ident(name: &str, dialect: Dialect) -> String {
    match dialect {
        Dialect::Snowflake => sql::ident(name),
        Dialect::Postgres => sink::ident(name),
    }
}

/// The key expression compared with literals.
fn key(column: &KeyColumn, dialect: Dialect) -> String {
    let c = ident(&column.name, dialect);
    match (column.kind, dialect) {
        (KeyKind::Integer | KeyKind::Other, _) => c,
        (KeyKind::IntegerText, Dialect::Snowflake) => format!("CAST({c} AS NUMBER(38,0))"),
        (KeyKind::IntegerText, Dialect::Postgres) => format!("CAST({c} AS numeric)"),
        (KeyKind::Day, Dialect::Snowflake) => format!("CAST({c} AS DATE)"),
        (KeyKind::Day, Dialect::Postgres) => format!("CAST({c} AS date)"),
        (KeyKind::Text, Dialect::Snowflake) => c,
        (KeyKind::Text, Dialect::Postgres) => format!("{c} COLLATE \"C\""),
    }
}

fn list(values: &[KeyValue], dialect: Dialect) -> String {
    values.iter().map(|v| literal(v, dialect)).collect::<Vec<_>>().join(", ")
}

/// A literal of the key's comparison type.
fn literal(value: &KeyValue, dialect: Dialect) -> String {
    match (value, dialect) {
        (KeyValue::Integer(i), _) => i.to_string(),
        (KeyValue::Day(d), Dialect::Snowflake) => {
            format!("CAST({} AS DATE)", sql::literal(&d.to_string()))
        }
        (KeyValue::Day(d), Dialect::Postgres) => format!("DATE '{d}'"),
        (KeyValue::Text(t), Dialect::Snowflake) => sql::literal(t),
        // Standard-conforming strings: only the quote is special.
        (KeyValue::Text(t), Dialect::Postgres) => format!("'{}'", t.replace('\'', "''")),
    }
}

/// Check that `text` (a `thaw run --where` predicate) is exactly one
/// boolean expression in Snowflake SQL: it passes
/// [`crate::config::check_filter`] (one expression parsed by the
/// `sqlparser` crate, nothing after it, no `;`, no comment, balanced quotes
/// and parentheses) and is not a bare literal or column name. The expression
/// is later ANDed, in parentheses, with the chunk predicates.
///
/// Returns what is wrong and where, for an error message.
pub fn check_where(text: &str) -> std::result::Result<(), String> {
    use sqlparser::ast::Expr;

    let expr = crate::config::parse_filter(text)?;
    let mut inner = &expr;
    while let Expr::Nested(e) = inner {
        inner = e;
    }
    if matches!(inner, Expr::Value(_) | Expr::Identifier(_) | Expr::CompoundIdentifier(_)) {
        return Err(format!("is '{expr}', a single value, not a condition; compare a column, e.g. \"VisitDate\" >= '2024-01-01'"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;

    fn both(spec: &ChunkSpec) -> (String, String) {
        (render(spec, Dialect::Snowflake), render(spec, Dialect::Postgres))
    }

    #[test]
    fn ranges_render_half_open_with_quoted_identifiers() {
        let k = KeyColumn::new("Visit \"Id\"", KeyKind::Integer);
        assert_eq!(
            both(&ChunkSpec::NumericRange { column: k.clone(), from: Some(-5), to: Some(10), with_nulls: false }),
            ("\"Visit \"\"Id\"\"\" >= -5 AND \"Visit \"\"Id\"\"\" < 10".into(), "\"Visit \"\"Id\"\"\" >= -5 AND \"Visit \"\"Id\"\"\" < 10".into())
        );
        assert_eq!(
            render(&ChunkSpec::NumericRange { column: k, from: None, to: None, with_nulls: false }, Dialect::Snowflake),
            "\"Visit \"\"Id\"\"\" IS NOT NULL"
        );
        let t = KeyColumn::new("Code", KeyKind::IntegerText);
        assert_eq!(
            render(&ChunkSpec::NumericRange { column: t, from: Some(7), to: None, with_nulls: true }, Dialect::Snowflake),
            "(CAST(\"Code\" AS NUMBER(38,0)) >= 7 OR \"Code\" IS NULL)"
        );
        let d = KeyColumn::new("Day", KeyKind::Day);
        let spec = ChunkSpec::DateRange { column: d, from: None, to: NaiveDate::from_ymd_opt(2024, 2, 29), with_nulls: false };
        assert_eq!(both(&spec), ("CAST(\"Day\" AS DATE) < CAST('2024-02-29' AS DATE)".into(), "CAST(\"Day\" AS date) < DATE '2024-02-29'".into()));
    }

    #[test]
    fn text_literals_are_escaped_per_dialect_and_compared_in_code_point_order() {
        let c = KeyColumn::new("code", KeyKind::Text);
        let spec = ChunkSpec::KeysetRange { column: c, from: None, to: Some(r"O'Br\en".into()), with_nulls: true };
        assert_eq!(
            both(&spec),
            (r#"("code" < 'O''Br\\en' OR "code" IS NULL)"#.into(), r#"("code" COLLATE "C" < 'O''Br\en' OR "code" IS NULL)"#.into())
        );
    }

    #[test]
    fn where_predicates_must_be_one_boolean_expression() {
        for ok in [
            r#""VisitDate" >= '2024-01-01' AND "VisitDate" < '2024-02-01'"#,
            r#"("ProviderID" IN (1, 2, 3) OR "Note" IS NULL)"#,
            r#""Code" LIKE 'a%' AND NOT "Flag""#,
            r#"CAST("Day" AS DATE) BETWEEN '2026-01-01' AND '2026-03-31'"#,
        ] {
            assert_eq!(check_where(ok), Ok(()), "{ok}");
        }
        let bad = |text: &str| check_where(text).expect_err(text);
        assert!(bad(r#""Id" > 5; DROP TABLE "ORDERS""#).contains("';'"));
        assert!(bad(r#""Id" > 5 -- and the rest"#).contains("comment"));
        assert!(bad(r#""Id" > 5 /* x */"#).contains("comment"));
        assert!(bad(r#"("Id" > 5"#).contains("not one SQL expression"));
        assert!(bad(r#""Id" > 5)"#).contains("text after the expression"));
        assert!(bad(r#""Note" = 'O'Brien'"#).contains("text after the expression") || bad(r#""Note" = 'O'Brien'"#).contains("cannot be read"));
        assert!(bad(r#""Note" = 'unterminated"#).contains("cannot be read as SQL"));
        assert!(bad(r#""Id" > 5 "Code" = 'x'"#).contains("text after the expression"));
        assert!(bad("SELECT 1").contains("not one SQL expression") || bad("SELECT 1").contains("text after"));
        assert!(bad("  ").contains("empty"));
        assert!(bad("1").contains("single value"));
        assert!(bad(r#"("Flag")"#).contains("single value"));
    }

    #[test]
    fn value_lists_nulls_and_nesting() {
        let p = KeyColumn::new("ProviderID", KeyKind::Integer);
        let values = vec![KeyValue::Integer(1), KeyValue::Integer(3)];
        assert_eq!(render(&ChunkSpec::Values { column: p.clone(), values: values.clone() }, Dialect::Snowflake), "\"ProviderID\" IN (1, 3)");
        assert_eq!(
            render(&ChunkSpec::OtherValues { column: p.clone(), values: values.clone(), with_nulls: false }, Dialect::Postgres),
            "\"ProviderID\" IS NOT NULL AND \"ProviderID\" NOT IN (1, 3)"
        );
        assert_eq!(
            render(&ChunkSpec::OtherValues { column: p.clone(), values, with_nulls: true }, Dialect::Snowflake),
            "(\"ProviderID\" IS NULL OR \"ProviderID\" NOT IN (1, 3))"
        );
        assert_eq!(
            render(&ChunkSpec::OtherValues { column: p.clone(), values: vec![], with_nulls: false }, Dialect::Snowflake),
            "\"ProviderID\" IS NOT NULL"
        );
        let nested = ChunkSpec::Within { outer: Box::new(ChunkSpec::Nulls { column: p }), inner: Box::new(ChunkSpec::All) };
        assert_eq!(render(&nested, Dialect::Snowflake), "(\"ProviderID\" IS NULL) AND (TRUE)");
    }
}
