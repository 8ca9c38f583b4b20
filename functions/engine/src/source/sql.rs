//! Rendering SQL text for Snowflake: quoted identifiers, escaped literals, and
//! the check on the one piece of raw SQL thaw accepts (`source_filter`).
//!
//! `snowflake-api` has no bind parameters, so every literal is rendered with
//! quote doubling and every identifier is double-quoted.

/// Quote an identifier: `Visit Id` → `"Visit Id"`, doubling embedded quotes.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Fully qualified, quoted table name: `"DB"."SCHEMA"."TABLE"`.
pub fn table(database: &str, schema: &str, table: &str) -> String {
    format!("{}.{}.{}", ident(database), ident(schema), ident(table))
}

/// A string literal with single quotes doubled (and backslashes escaped,
/// which Snowflake treats as escape characters in string literals).
pub fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_literals_are_escaped() {
        assert_eq!(ident(r#"a"b"#), r#""a""b""#);
        assert_eq!(literal("O'Brien"), "'O''Brien'");
        assert_eq!(literal(r"a\b"), r"'a\\b'");
    }

}
