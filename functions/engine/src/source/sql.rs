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

/// Check that `filter` is a single boolean expression: no statement
/// separators, no comments, balanced quotes and parentheses.
///
/// Returns a description of the first problem found.
pub fn check_filter(filter: &str) -> Result<(), String> {
    if filter.trim().is_empty() {
        return Err("is empty; remove the key or give a boolean expression".into());
    }
    let mut depth: i32 = 0;
    let mut chars = filter.chars().peekable();
    let mut in_single = false;
    let mut in_double = false;
    while let Some(c) = chars.next() {
        match c {
            '\'' if !in_double => in_single = !in_single,
            '"' if !in_single => in_double = !in_double,
            _ if in_single || in_double => {}
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err("has an unbalanced ')'".into());
                }
            }
            ';' => return Err("contains ';': it must be one boolean expression, not statements".into()),
            '-' if chars.peek() == Some(&'-') => return Err("contains a '--' comment".into()),
            '/' if chars.peek() == Some(&'*') => return Err("contains a '/*' comment".into()),
            _ => {}
        }
    }
    if in_single || in_double {
        return Err("has an unterminated quote".into());
    }
    if depth != 0 {
        return Err("has an unbalanced '('".into());
    }
    Ok(())
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

    #[test]
    fn filters_must_be_one_expression() {
        assert!(check_filter(r#""Is Active" = TRUE AND "Source System" = 'hha'"#).is_ok());
        assert!(check_filter("x = 1; DROP TABLE t").is_err());
        assert!(check_filter("x = ';'").is_ok());
        assert!(check_filter("(x = 1").is_err());
        assert!(check_filter("x = 1 -- y").is_err());
    }
}
