//! Canonical text forms for reconciliation checksums: the same value yields
//! byte-identical text in Snowflake and in PostgreSQL (docs/reconcile.md §3).
//!
//! The form is decided by the **source** type, at the source value's full
//! precision; the PostgreSQL side converts the target value into that form.
//! A lossy copy (a timestamp in a `date`, 1.25 in a `numeric(10,1)`, a double
//! in a `float4`) therefore shows as a changed row instead of hiding.
//!
//! | source → target | canonical text |
//! | --- | --- |
//! | NUMBER(p,s) → int*, numeric, float* | fixed decimals at scale max(s, target scale); an unconstrained `numeric` holding more decimals than s, its own text (so it differs) |
//! | TEXT → int*, numeric | `TRY_CAST` to NUMBER at the target scale (blank → NULL) |
//! | FLOAT → float8, float4, numeric | [`canonical_float`]: shortest round-trip digits in scientific form (`1.5e0`, `3.0000000000000004e-1`, `1e308`); `NaN`, `Infinity`, `-Infinity`, `0`, `-0` explicit |
//! | BOOLEAN / NUMBER → bool | `1` / `0` |
//! | DATE, TIMESTAMP_* → date, timestamp, timestamptz | microseconds since 1970-01-01 (timestamptz: of the UTC instant; timestamp and date: of the wall clock thaw writes — TIMESTAMP_TZ in its stored offset, LTZ in UTC); nanoseconds floored to microseconds like the COPY encoder |
//! | TIME → time | microseconds since midnight |
//! | TEXT → uuid | lower-case hyphenated |
//! | VARIANT/OBJECT/ARRAY/TEXT → json, jsonb | [`canonical_json`]: one `path=leaf` line per leaf, sorted; keys order- and number-spelling-insensitive |
//! | BINARY → bytea | lower-case hex |
//! | anything → text, varchar, char | the text as stored (char: trailing blanks removed); non-text sources rendered as the encoder renders them |
//!
//! ## Where each form is computed
//!
//! * **PostgreSQL**: always in SQL ([`postgres_expr`]); JSON by the PL/pgSQL
//!   function `thaw_reconcile.canonical_json` of migration V22
//!   ([`postgres_json`]), floats from the shortest round-trip text of `float8`
//!   (`extra_float_digits = 1`).
//! * **Snowflake**: in SQL ([`snowflake_expr`]); floats and JSON call two
//!   session-temporary JavaScript functions ([`SNOWFLAKE_FUNCTIONS`]:
//!   `THAW_CANON_FLOAT`, `THAW_CANON_JSON`) created by reconcile before its
//!   queries.
//! * **The emulator** (fakesnow = DuckDB) runs no JavaScript: the same two
//!   forms are computed in Rust ([`canonical_float`], [`canonical_json`])
//!   from streamed raw values ([`emulator_part`]); every other column still
//!   runs the Snowflake SQL inside the emulator.
//!
//! [`row_text`] joins a row's forms with [`SEPARATOR_SQL`], NULL as
//! [`NULL_MARKER_SQL`]; the row hash is `MD5(row_text)`, whose first 12 hex
//! digits are summed as two 24-bit halves ([`hex_to_int`], [`checksum_sql`]).
//! Each half is below 2^24, so even a FLOAT sum (fakesnow returns FLOAT for
//! SUM of NUMBER) stays exact up to 2^29 rows. Hex digits become integers by
//! `POSITION(SUBSTR(h, i, 1) IN '0123456789abcdef') - 1` terms, which both
//! engines (and fakesnow, which rejects `TO_NUMBER(h, 'XXXX')`) accept.
//!
//! Verified value by value against fakesnow and PostgreSQL 15 by
//! `tests/types_roundtrip.rs`. Known limits (documented, not hidden):
//! * fakesnow ignores `TO_CHAR` formats, so text columns filled from
//!   DATE/TIME/TIMESTAMP sources only agree on real Snowflake;
//! * JSON numbers are compared as doubles (integers beyond 2^53 and decimals
//!   beyond 17 significant digits compare rounded); JSON numbers outside the
//!   double range fail the table in PostgreSQL; object keys outside the
//!   Basic Multilingual Plane sort by code point in all three implementations;
//! * doubles of 9.2e18 and above whose shortest digits are a tie
//!   (docs/reconcile.md §3.3) may render differently in PostgreSQL than in
//!   Rust ([`POSTGRES_FLOAT_FUNCTION`] corrects ties from 1e14 to 9.2e18);
//! * text sources into an unconstrained `numeric` compare at scale 0;
//! * on the emulator only, TIMESTAMP_TZ into `date` compares the date:
//!   fakesnow keeps TIMESTAMP_TZ in UTC without its offset, so local
//!   midnights are no midnights there.

use serde_json::Value;

use crate::sync::table_plan::SourceColumn;
use crate::sink::{PgType, TargetColumn};
use crate::source::arrow::LogicalType;
use crate::source::sql;

/// SQL for the separator between a row's column texts (unit separator), the same in both engines.
pub const SEPARATOR_SQL: &str = "CHR(31)";
/// SQL for the text that stands for NULL (record separator), the same in both engines.
pub const NULL_MARKER_SQL: &str = "CHR(30)";
/// The separator as a character (what [`SEPARATOR_SQL`] renders).
pub const SEPARATOR: char = '\u{1f}';
/// The NULL marker as a character (what [`NULL_MARKER_SQL`] renders).
pub const NULL_MARKER: char = '\u{1e}';
/// The escape character of text values (ESC): in a text column's canonical
/// form ESC becomes ESC ESC, the NULL marker ESC `^` and the separator ESC
/// `_` ([`escape_separators_sql`], [`escape_separators`]), so a value that
/// holds them can neither pass for NULL nor shift a column boundary.
pub const ESCAPE: char = '\u{1b}';

/// SQL (valid in both engines) escaping [`ESCAPE`], [`NULL_MARKER`] and
/// [`SEPARATOR`] in the text expression `e` (docs/reconcile.md §3.1). Text
/// without them is unchanged.
pub fn escape_separators_sql(e: &str) -> String {
    format!("REPLACE(REPLACE(REPLACE({e}, CHR(27), CHR(27) || CHR(27)), {NULL_MARKER_SQL}, CHR(27) || '^'), {SEPARATOR_SQL}, CHR(27) || '_')")
}

/// [`escape_separators_sql`] in Rust, on the bytes of one value's text
/// (the three characters are single UTF-8 bytes that occur in no multi-byte
/// sequence).
pub fn escape_separators(text: &mut Vec<u8>) {
    if !text.iter().any(|b| matches!(*b, 0x1b | 0x1e | 0x1f)) {
        return;
    }
    let raw = std::mem::take(text);
    for b in raw {
        match b {
            0x1b => text.extend_from_slice(&[0x1b, 0x1b]),
            0x1e => text.extend_from_slice(&[0x1b, b'^']),
            0x1f => text.extend_from_slice(&[0x1b, b'_']),
            b => text.push(b),
        }
    }
}

/// JavaScript shared by the two Snowflake functions: `fl` renders a double
/// like [`canonical_float`], `walk`/`cmp` build [`canonical_json`].
const JS_COMMON: &str = r#"function fl(x) { if (x !== x) return 'NaN'; if (x === Infinity) return 'Infinity'; if (x === -Infinity) return '-Infinity'; if (x === 0) return (1 / x < 0) ? '-0' : '0'; return x.toExponential().replace('e+', 'e'); }
function cmp(a, b) { var i = 0, j = 0; while (i < a.length && j < b.length) { var x = a.codePointAt(i), y = b.codePointAt(j); if (x !== y) return x < y ? -1 : 1; i += x > 0xffff ? 2 : 1; j += y > 0xffff ? 2 : 1; } return i < a.length ? 1 : (j < b.length ? -1 : 0); }
function walk(p, v, out) {
  if (v === null || v === undefined) { out.push(p + '=null'); }
  else if (Array.isArray(v)) { if (v.length === 0) out.push(p + '=[]'); for (var i = 0; i < v.length; i++) walk(p + '[' + i + ']', v[i], out); }
  else if (typeof v === 'object') { var ks = Object.keys(v); if (ks.length === 0) out.push(p + '={}'); for (var k = 0; k < ks.length; k++) walk(p + '.' + JSON.stringify(ks[k]), v[ks[k]], out); }
  else if (typeof v === 'number') { out.push(p + '=' + fl(v === 0 ? 0 : v)); }
  else if (typeof v === 'boolean') { out.push(p + '=' + (v ? 'true' : 'false')); }
  else { out.push(p + '=' + JSON.stringify(String(v))); }
}"#;

/// The session-temporary Snowflake functions the Snowflake-side SQL of
/// float and JSON columns calls, as `CREATE` statements to run (in order) on
/// the reconcile session before any query. Needs the privilege to create
/// functions in the session's current schema; they vanish with the session.
pub fn snowflake_functions() -> Vec<String> {
    let body = |ret: &str| format!("{JS_COMMON}\n{ret}");
    vec![
        format!(
            "CREATE OR REPLACE TEMPORARY FUNCTION THAW_CANON_FLOAT(F FLOAT) RETURNS VARCHAR LANGUAGE JAVASCRIPT STRICT IMMUTABLE AS $$\n{}\n$$",
            body("return fl(F);")
        ),
        format!(
            "CREATE OR REPLACE TEMPORARY FUNCTION THAW_CANON_JSON(V VARIANT) RETURNS VARCHAR LANGUAGE JAVASCRIPT STRICT IMMUTABLE AS $$\n{}\n$$",
            body("var out = []; walk('$', V, out); out.sort(cmp); return out.join(',');")
        ),
    ]
}

/// Names of the functions created by [`snowflake_functions`].
pub const SNOWFLAKE_FUNCTIONS: [&str; 2] = ["THAW_CANON_FLOAT", "THAW_CANON_JSON"];

/// How the emulator computes one column's canonical text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmulatorPart {
    /// In the emulator, by this SQL (the same SQL as on Snowflake).
    Sql(String),
    /// In Rust by [`canonical_float`] from this SQL expression's FLOAT value.
    Float(String),
    /// In Rust by [`canonical_json`] from this SQL expression's JSON text
    /// (unparseable text counts as NULL, like `TRY_PARSE_JSON`).
    Json(String),
}

/// The canonical text of a double: the shortest digits that round-trip, in
/// scientific form `[-]d[.ddd]e[-]N` (`1.5e0`, `1e-7`, `3.0000000000000004e-1`,
/// `1e308`); `NaN`, `Infinity`, `-Infinity`, `0`, `-0` for the special values.
/// JavaScript's `toExponential()` (Snowflake) and PostgreSQL's shortest
/// `float8` text (reformatted in SQL) produce the same text.
pub fn canonical_float(x: f64) -> String {
    if x.is_nan() {
        "NaN".into()
    } else if x == f64::INFINITY {
        "Infinity".into()
    } else if x == f64::NEG_INFINITY {
        "-Infinity".into()
    } else if x == 0.0 {
        if x.is_sign_negative() { "-0".into() } else { "0".into() }
    } else {
        format!("{x:e}")
    }
}

/// The canonical text of a JSON value: one `path=leaf` entry per leaf,
/// sorted by code point and joined by `,`. Paths start at `$`; object
/// members add `.` and the key as a JSON string, array elements `[index]`.
/// Leaves: strings as JSON strings, numbers by [`canonical_float`] of their
/// double value (a zero as `0`: `jsonb` holds no `-0`), `true`/`false`/`null`,
/// and `{}`/`[]` for empty containers.
/// So key order and number spelling (`1e-7` vs `0.0000001`, `2.50` vs `2.5`)
/// do not matter; a JSON `null` (`$=null`) differs from SQL NULL and `""`
/// (`$=""`) from both.
pub fn canonical_json(v: &Value) -> String {
    fn walk(path: String, v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Null => out.push(format!("{path}=null")),
            Value::Bool(b) => out.push(format!("{path}={b}")),
            Value::Number(n) => {
                // `-0` in JSON is 0 in `jsonb` (numeric has no negative zero): `+ 0.0` makes it 0.
                out.push(format!("{path}={}", canonical_float(n.as_f64().unwrap_or(f64::NAN) + 0.0)))
            }
            Value::String(s) => out.push(format!("{path}={}", Value::String(s.clone()))),
            Value::Array(a) if a.is_empty() => out.push(format!("{path}=[]")),
            Value::Array(a) => a.iter().enumerate().for_each(|(i, x)| walk(format!("{path}[{i}]"), x, out)),
            Value::Object(m) if m.is_empty() => out.push(format!("{path}={{}}")),
            Value::Object(m) => m.iter().for_each(|(k, x)| walk(format!("{path}.{}", Value::String(k.clone())), x, out)),
        }
    }
    let mut out = Vec::new();
    walk("$".into(), v, &mut out);
    out.sort();
    out.join(",")
}

/// Whether the column's canonical form needs the JavaScript functions on
/// Snowflake (and Rust on the emulator): FLOAT sources into numbers, and
/// JSON targets.
fn special(source: &SourceColumn, target: &TargetColumn) -> Option<bool> {
    let logical = logical(source);
    match target.pg_type {
        PgType::Float4 | PgType::Float8 | PgType::Numeric | PgType::Int2 | PgType::Int4 | PgType::Int8 if logical == LogicalType::Real => Some(false),
        PgType::Json | PgType::Jsonb => Some(true),
        _ => None,
    }
}

pub(crate) fn logical(source: &SourceColumn) -> LogicalType {
    LogicalType::from_data_type(&source.data_type).unwrap_or(LogicalType::Text)
}

fn is_semi(logical: LogicalType) -> bool {
    matches!(logical, LogicalType::Variant | LogicalType::Object | LogicalType::Array)
}

/// The scale NUMBER sources are compared at: the larger of the source and
/// target scales (an unconstrained `numeric` holds the source scale), at
/// most 38 (Snowflake's largest; NUMBER(38,38) holds values in (−1, 1)).
pub(crate) fn number_scale(source: &SourceColumn, target: &TargetColumn) -> i64 {
    let src = source.scale.unwrap_or(0);
    let dst = if target.pg_type == PgType::Numeric { target.numeric_scale.map(i64::from).unwrap_or(src) } else { 0 };
    src.max(dst).clamp(0, 38)
}

/// Whether a NUMBER source's canonical text goes through `NUMBER(38, 38)`,
/// which the emulator's DuckDB renders without the integer digit (`.5`,
/// `-.5`; Snowflake, PostgreSQL and Rust write `0.5`, `-0.5`).
fn through_scale_38(source: &SourceColumn, target: &TargetColumn) -> bool {
    logical(source) == LogicalType::Fixed
        && match target.pg_type {
            PgType::Int2 | PgType::Int4 | PgType::Int8 | PgType::Numeric | PgType::Float4 | PgType::Float8 => number_scale(source, target) == 38,
            PgType::Text | PgType::Varchar | PgType::Bpchar => source.scale.unwrap_or(0) >= 38,
            _ => false,
        }
}

/// Snowflake SQL rendering the canonical text of `source` as it lands in
/// `target` (see the module table), for real Snowflake: float and JSON
/// columns call [`SNOWFLAKE_FUNCTIONS`]. The column name is quoted here.
/// A `DATA_TYPE` thaw does not know is treated as TEXT.
pub fn snowflake_expr(source: &SourceColumn, target: &TargetColumn) -> String {
    let c = sql::ident(&source.name);
    match special(source, target) {
        Some(false) => format!("THAW_CANON_FLOAT({c})"),
        Some(true) if is_semi(logical(source)) => format!("THAW_CANON_JSON({c})"),
        Some(true) => format!("THAW_CANON_JSON(TRY_PARSE_JSON({c}))"),
        None => common_expr(source, target),
    }
}

/// How the emulator computes the canonical text of `source` in `target`:
/// the Snowflake SQL of [`snowflake_expr`] where DuckDB can run it, else the
/// raw value for Rust to finish.
pub fn emulator_part(source: &SourceColumn, target: &TargetColumn) -> EmulatorPart {
    let c = sql::ident(&source.name);
    match special(source, target) {
        Some(false) => EmulatorPart::Float(c),
        Some(true) if is_semi(logical(source)) => EmulatorPart::Json(format!("TO_JSON({c})")),
        Some(true) => EmulatorPart::Json(c),
        // fakesnow keeps TIMESTAMP_TZ in UTC and drops the stored offset, so a
        // local midnight (a date stored as TIMESTAMP_TZ) is no midnight there:
        // the emulator compares the date only. Real Snowflake compares the
        // full wall clock in the stored offset.
        None if target.pg_type == PgType::Date && logical(source) == LogicalType::TimestampTz => {
            EmulatorPart::Sql(format!("CAST(DATEDIFF(microsecond, '1970-01-01 00:00:00'::TIMESTAMP_NTZ, CAST(CAST({c} AS DATE) AS TIMESTAMP_NTZ)) AS VARCHAR)"))
        }
        // DuckDB's `.5` for a DECIMAL(38,38) given its integer digit.
        None if through_scale_38(source, target) => EmulatorPart::Sql(format!("REPLACE({}, '.', '0.')", common_expr(source, target))),
        None => EmulatorPart::Sql(common_expr(source, target)),
    }
}

/// Snowflake SQL rendering the canonical text of `source` cut to its day
/// (the day in the value's own offset, as `CAST(… AS DATE)` gives it): the
/// form of a column listed in the table's `truncate_to_date`, whose copy
/// keeps only the day by configuration. Same text as [`postgres_expr`] of a
/// `date` target.
pub fn snowflake_day_expr(source: &SourceColumn) -> String {
    let c = sql::ident(&source.name);
    format!("CAST(DATEDIFF(microsecond, '1970-01-01 00:00:00'::TIMESTAMP_NTZ, CAST(CAST({c} AS DATE) AS TIMESTAMP_NTZ)) AS VARCHAR)")
}

/// Snowflake SQL of the forms both Snowflake and the emulator compute in SQL.
fn common_expr(source: &SourceColumn, target: &TargetColumn) -> String {
    let c = sql::ident(&source.name);
    let logical = logical(source);
    let varchar = |e: String| format!("CAST({e} AS VARCHAR)");
    match target.pg_type {
        PgType::Numeric if logical == LogicalType::Text && target.numeric_scale.is_none() => snowflake_text_decimal(&c),
        PgType::Int2 | PgType::Int4 | PgType::Int8 | PgType::Numeric if logical == LogicalType::Text => {
            let scale = target.numeric_scale.map(i64::from).unwrap_or(0).clamp(0, 37);
            varchar(format!("TRY_CAST({c} AS NUMBER(38, {scale}))"))
        }
        PgType::Int2 | PgType::Int4 | PgType::Int8 | PgType::Numeric | PgType::Float4 | PgType::Float8 => {
            varchar(format!("CAST({c} AS NUMBER(38, {}))", number_scale(source, target)))
        }
        PgType::Bool => match logical {
            // NULL stays NULL (IFF would make it '0', indistinguishable from FALSE).
            LogicalType::Fixed => format!("CASE WHEN {c} <> 0 THEN '1' WHEN {c} = 0 THEN '0' END"),
            _ => format!("CASE WHEN {c} THEN '1' WHEN NOT {c} THEN '0' END"),
        },
        PgType::Date | PgType::Timestamp => varchar(format!("DATEDIFF(microsecond, '1970-01-01 00:00:00'::TIMESTAMP_NTZ, {})", wall_clock(&c, logical))),
        PgType::Time => varchar(format!("DATEDIFF(microsecond, '00:00:00'::TIME, {c})")),
        PgType::Timestamptz => varchar(format!("DATEDIFF(microsecond, '1970-01-01 00:00:00'::TIMESTAMP_NTZ, {})", utc_clock(&c, logical))),
        PgType::Uuid => {
            let hex = format!("LOWER(REPLACE(REPLACE(REPLACE(TRIM({c}), '-', ''), '{{', ''), '}}', ''))");
            let part = |start: u32, len: u32| format!("SUBSTR({hex}, {start}, {len})");
            format!("{} || '-' || {} || '-' || {} || '-' || {} || '-' || {}", part(1, 8), part(9, 4), part(13, 4), part(17, 4), part(21, 12))
        }
        // Only reached for sources `special` does not claim (never for JSON targets).
        PgType::Json | PgType::Jsonb => format!("TO_JSON({c})"),
        PgType::Bytea => format!("LOWER(HEX_ENCODE({c}))"),
        PgType::Text | PgType::Varchar | PgType::Bpchar => {
            let text = match logical {
                LogicalType::Text => c,
                LogicalType::Variant | LogicalType::Object | LogicalType::Array => format!("TO_JSON({c})"),
                // Through NUMBER(38, s): the same text on Snowflake, and DuckDB
                // (the emulator) renders a DECIMAL without integer digits,
                // NUMBER(9,9), as `.024996425` where the encoder writes `0.024996425`.
                LogicalType::Fixed => varchar(format!("CAST({c} AS NUMBER(38, {}))", source.scale.unwrap_or(0).clamp(0, 38))),
                LogicalType::Boolean | LogicalType::Real => varchar(c),
                LogicalType::Binary => format!("HEX_DECODE_STRING(HEX_ENCODE({c}))"),
                LogicalType::Date => format!("TO_CHAR({c}, 'YYYY-MM-DD')"),
                LogicalType::Time => format!("TO_CHAR({c}, 'HH24:MI:SS.FF6')"),
                LogicalType::TimestampNtz => format!("TO_CHAR({c}, 'YYYY-MM-DD HH24:MI:SS.FF6')"),
                LogicalType::TimestampTz => format!("TO_CHAR({c}, 'YYYY-MM-DD HH24:MI:SS.FF6TZH:TZM')"),
                LogicalType::TimestampLtz => format!("TO_CHAR(CONVERT_TIMEZONE('UTC', {c}), 'YYYY-MM-DD HH24:MI:SS.FF6TZH:TZM')"),
            };
            escape_separators_sql(&if target.pg_type == PgType::Bpchar { format!("RTRIM({text}, ' ')") } else { text })
        }
    }
}

/// Snowflake SQL (valid in the emulator too) rendering decimal text `c` as
/// the exact number it is, in its shortest form: no `+`, no leading zeros,
/// no trailing zeros after the point, no point without decimals, `-` only
/// for a number other than zero (`' +007.50'` → `7.5`, `'-0.000'` → `0`,
/// `'.5'` → `0.5`); blank text is NULL, as the encoder writes it. The
/// canonical form of TEXT in an unconstrained `numeric`, which holds the
/// text's own decimals: PostgreSQL renders the stored value by
/// `TRIM_SCALE` ([`postgres_expr`]), the row hashes by
/// `row_hash::ColumnForm::TextNumber`. Built from the text, not by a cast:
/// no NUMBER scale holds every text exactly (it was cast to `NUMBER(38, 0)`,
/// so a target holding 1.6 for the source's '1.5' reconciled `ok`), and the
/// emulator holds `NUMBER(38, 0)` in a 64-bit integer. Anchored
/// `REGEXP_REPLACE`s rather than `LTRIM`/`RTRIM` with characters, which the
/// emulator ignores. Blanks are ASCII white space (`[[:space:]]`; the
/// encoder also trims other Unicode white space such as U+00A0). Text the
/// encoder refuses (letters, exponents) never reaches a target.
fn snowflake_text_decimal(c: &str) -> String {
    let t = format!("REGEXP_REPLACE(REGEXP_REPLACE({c}, '^[[:space:]]+', ''), '[[:space:]]+$', '')");
    let unsigned = format!("REGEXP_REPLACE({t}, '^[-+]', '')");
    let integer = format!("REGEXP_REPLACE(SPLIT_PART({unsigned}, '.', 1), '^0+', '')");
    let fraction = format!("REGEXP_REPLACE(SPLIT_PART({unsigned}, '.', 2), '0+$', '')");
    format!(
        "CASE WHEN {t} = '' THEN NULL WHEN {integer} = '' AND {fraction} = '' THEN '0' \
         ELSE CASE WHEN LEFT({t}, 1) = '-' THEN '-' ELSE '' END || CASE WHEN {integer} = '' THEN '0' ELSE {integer} END \
         || CASE WHEN {fraction} = '' THEN '' ELSE '.' || {fraction} END END"
    )
}

/// A TIMESTAMP_NTZ expression holding the wall clock thaw writes into a
/// `timestamp` or `date`: NTZ as is, TIMESTAMP_TZ in its stored offset,
/// TIMESTAMP_LTZ in UTC, DATE at midnight.
fn wall_clock(c: &str, logical: LogicalType) -> String {
    match logical {
        LogicalType::TimestampNtz => c.to_string(),
        LogicalType::TimestampTz | LogicalType::Date => format!("CAST({c} AS TIMESTAMP_NTZ)"),
        _ => utc_clock(c, logical),
    }
}

/// A TIMESTAMP_NTZ expression holding the UTC wall clock of the instant thaw
/// writes into a `timestamptz` (NTZ and DATE read as UTC).
fn utc_clock(c: &str, logical: LogicalType) -> String {
    match logical {
        LogicalType::TimestampNtz => c.to_string(),
        LogicalType::TimestampTz | LogicalType::TimestampLtz => format!("CAST(CONVERT_TIMEZONE('UTC', {c}) AS TIMESTAMP_NTZ)"),
        _ => format!("CAST({c} AS TIMESTAMP_NTZ)"),
    }
}

/// The PostgreSQL function computing [`canonical_float`] of a `float8`
/// (ties of 1e14 and above included, docs/reconcile.md §3.3), created by
/// migration `V22__canonical_json.sql`.
pub const POSTGRES_FLOAT_FUNCTION: &str = "thaw_reconcile.canonical_float(float8)";

/// [`POSTGRES_FLOAT_FUNCTION`]'s name, to call it.
const POSTGRES_FLOAT_FUNCTION_NAME: &str = "thaw_reconcile.canonical_float";

/// PostgreSQL SQL rendering [`canonical_float`] of the `float8` expression
/// `x` (evaluated several times: pass a column or a cheap expression): plain
/// SQL below 1e14 in magnitude (about 4 µs per value), a call of
/// [`POSTGRES_FLOAT_FUNCTION`] from 1e14 on, where PostgreSQL's shortest
/// digits can differ from Rust's on a tie (docs/reconcile.md §3.3). Needs
/// `extra_float_digits >= 1` (PostgreSQL's default since 12), which makes
/// `float8` text the shortest round-trip digits, and the function in the
/// database ([`postgres_functions_missing`]).
pub fn postgres_float(x: &str) -> String {
    // t: the shortest digits as a plain decimal without sign or trailing zeros;
    // ip/fp: its integer and fraction parts.
    let t = format!("CAST(TRIM_SCALE(ABS(CAST(CAST({x} AS TEXT) AS NUMERIC))) AS TEXT)");
    let digits = "RTRIM(LTRIM(SPLIT_PART(t, '.', 1) || SPLIT_PART(t, '.', 2), '0'), '0')";
    let exponent = "CASE WHEN SPLIT_PART(t, '.', 1) <> '0' THEN LENGTH(SPLIT_PART(t, '.', 1)) - 1 \
                    ELSE -(LENGTH(SPLIT_PART(t, '.', 2)) - LENGTH(LTRIM(SPLIT_PART(t, '.', 2), '0')) + 1) END";
    format!(
        "CASE WHEN {x} IS NULL THEN NULL WHEN {x} = CAST('NaN' AS FLOAT8) THEN 'NaN' \
         WHEN {x} = CAST('Infinity' AS FLOAT8) THEN 'Infinity' WHEN {x} = CAST('-Infinity' AS FLOAT8) THEN '-Infinity' \
         WHEN {x} = 0 THEN CASE WHEN CAST({x} AS TEXT) LIKE '-%' THEN '-0' ELSE '0' END \
         WHEN ABS({x}) >= 1e14 THEN {POSTGRES_FLOAT_FUNCTION_NAME}({x}) \
         ELSE (SELECT CASE WHEN {x} < 0 THEN '-' ELSE '' END || LEFT(d, 1) || CASE WHEN LENGTH(d) > 1 THEN '.' || SUBSTR(d, 2) ELSE '' END || 'e' || CAST(e AS TEXT) \
               FROM (SELECT {digits} AS d, {exponent} AS e FROM (SELECT {t} AS t) t0) t1) END"
    )
}

/// The PostgreSQL function computing [`canonical_json`] (`jsonb` → `text`),
/// created by migration `V22__canonical_json.sql` (docs/reconcile.md §3).
pub const POSTGRES_JSON_FUNCTION: &str = "thaw_reconcile.canonical_json(jsonb)";

/// PostgreSQL SQL rendering [`canonical_json`] of the `jsonb` expression `j`
/// (NULL for NULL): a call of [`POSTGRES_JSON_FUNCTION`], a PL/pgSQL walk of
/// the value (docs/reconcile.md §3.3) costing a quarter (flat documents) to
/// a half (nested objects with keys out of byte order) of the recursive CTE
/// it replaced (docs/benchmarks.md §4). Needs `extra_float_digits >= 1` like
/// [`postgres_float`] and the function in the database (a database migrated
/// before V22 lacks it: [`postgres_functions_missing`]).
pub fn postgres_json(j: &str) -> String {
    format!("thaw_reconcile.canonical_json({j})")
}

/// SQL returning one row with `true` when the database lacks
/// [`POSTGRES_JSON_FUNCTION`] or [`POSTGRES_FLOAT_FUNCTION`].
pub const POSTGRES_FUNCTIONS_MISSING_SQL: &str =
    "SELECT to_regprocedure('thaw_reconcile.canonical_json(jsonb)') IS NULL OR to_regprocedure('thaw_reconcile.canonical_float(float8)') IS NULL";

/// The error of a table with JSON or FLOAT columns reconciled against a
/// database that lacks [`POSTGRES_JSON_FUNCTION`] or
/// [`POSTGRES_FLOAT_FUNCTION`] (migrated by a thaw older than migration
/// V22): what is missing, where, and what to do.
pub fn postgres_functions_missing(database: &str) -> crate::error::Error {
    crate::error::Error::new(
        crate::error::ErrorKind::SchemaMismatch,
        format!(
            "the PostgreSQL functions {POSTGRES_JSON_FUNCTION} and {POSTGRES_FLOAT_FUNCTION} that reconcile uses for json/jsonb and FLOAT columns are missing from database {database} \
             (its schema predates migration V22__canonical_json): run `thaw migrate` (or deploy, which runs schema-migrate), then reconcile again"
        ),
    )
}

/// PostgreSQL SQL rendering the canonical text of the target column that
/// `source` was copied into (see the module table): the target value
/// converted into the form the **source** type decides. The column name is
/// quoted here.
pub fn postgres_expr(source: &SourceColumn, target: &TargetColumn) -> String {
    let c = crate::sink::ident(&target.name);
    let logical = logical(source);
    let epoch_micros = format!("CAST(CAST(EXTRACT(EPOCH FROM {c}) * 1000000 AS BIGINT) AS VARCHAR)");
    match target.pg_type {
        PgType::Int2 | PgType::Int4 | PgType::Int8 | PgType::Numeric | PgType::Float4 | PgType::Float8 if logical == LogicalType::Real => {
            postgres_float(&format!("CAST({c} AS FLOAT8)"))
        }
        // Exact, in its shortest form (see `snowflake_text_decimal`).
        PgType::Numeric if logical == LogicalType::Text && target.numeric_scale.is_none() => format!("CAST(TRIM_SCALE({c}) AS VARCHAR)"),
        PgType::Int2 | PgType::Int4 | PgType::Int8 | PgType::Numeric if logical == LogicalType::Text => {
            let scale = target.numeric_scale.map(i64::from).unwrap_or(0).clamp(0, 37);
            format!("CAST(ROUND(CAST({c} AS NUMERIC), {scale}) AS VARCHAR)")
        }
        // Cheaper forms with byte-identical text (docs/reconcile.md §4.1): an
        // integer's own text plus the scale's zeros, and a `numeric(p, s)`'s
        // own text when s is the compared scale (every value holds scale s).
        PgType::Int2 | PgType::Int4 | PgType::Int8 => match number_scale(source, target) {
            0 => format!("CAST({c} AS TEXT)"),
            scale => format!("CAST({c} AS TEXT) || '.{}'", "0".repeat(scale as usize)),
        },
        PgType::Numeric if target.numeric_scale.map(i64::from) == Some(number_scale(source, target)) => format!("CAST({c} AS TEXT)"),
        // An unconstrained numeric can hold more decimals than the source's
        // scale: such a value shows them all (it differs from any NUMBER(p, s)
        // text) instead of being rounded into agreement.
        PgType::Numeric if target.numeric_scale.is_none() => {
            let scale = number_scale(source, target);
            format!("CASE WHEN {c} = ROUND({c}, {scale}) THEN CAST(ROUND({c}, {scale}) AS VARCHAR) ELSE CAST({c} AS VARCHAR) END")
        }
        PgType::Numeric => format!("CAST(ROUND(CAST({c} AS NUMERIC), {}) AS VARCHAR)", number_scale(source, target)),
        // A double holding a NUMBER: its shortest text is exact, then compared at the source scale.
        PgType::Float4 | PgType::Float8 => format!("CAST(ROUND(CAST(CAST({c} AS TEXT) AS NUMERIC), {}) AS VARCHAR)", number_scale(source, target)),
        PgType::Uuid => format!("CAST({c} AS VARCHAR)"),
        PgType::Text | PgType::Varchar => escape_separators_sql(&format!("CAST({c} AS VARCHAR)")),
        PgType::Bool => format!("CASE WHEN {c} THEN '1' WHEN NOT {c} THEN '0' END"),
        PgType::Date => format!("CAST(CAST({c} - DATE '1970-01-01' AS BIGINT) * 86400000000 AS VARCHAR)"),
        PgType::Time | PgType::Timestamp | PgType::Timestamptz => epoch_micros,
        PgType::Json | PgType::Jsonb => postgres_json(&format!("CAST({c} AS JSONB)")),
        PgType::Bytea => format!("ENCODE({c}, 'hex')"),
        PgType::Bpchar => escape_separators_sql(&format!("RTRIM(CAST({c} AS TEXT), ' ')")),
    }
}

/// One row's canonical text: the column expressions joined by
/// [`SEPARATOR_SQL`], each NULL replaced by [`NULL_MARKER_SQL`]. Valid SQL in
/// both engines.
pub fn row_text(exprs: &[String]) -> String {
    if exprs.is_empty() {
        return "''".to_string();
    }
    exprs.iter().map(|e| format!("COALESCE({e}, {NULL_MARKER_SQL})")).collect::<Vec<_>>().join(&format!(" || {SEPARATOR_SQL} || "))
}

/// SQL turning `len` lower-case hex digits of `hex_expr`, starting at 1-based
/// position `start`, into an integer, valid in both engines (and fakesnow).
/// `len` at most 13 keeps the value exact in a double.
pub fn hex_to_int(hex_expr: &str, start: usize, len: usize) -> String {
    (0..len)
        .map(|i| {
            let weight = 16u64.pow((len - 1 - i) as u32);
            format!("(POSITION(SUBSTR({hex_expr}, {}, 1) IN '0123456789abcdef') - 1) * {weight}", start + i)
        })
        .collect::<Vec<_>>()
        .join(" + ")
}

/// PostgreSQL SQL turning the first `len` (at most 15) lower-case hex digits
/// of `hex_expr` into a `bigint` by one `bit(4 × len)` cast: the same value
/// as [`hex_to_int`] from position 1, at a fraction of its cost (the
/// `POSITION` terms were most of PostgreSQL's per-row time).
pub fn postgres_hex_to_int(hex_expr: &str, len: usize) -> String {
    format!("CAST(CAST('x' || LEFT({hex_expr}, {len}) AS BIT({})) AS BIGINT)", 4 * len)
}

/// A whole-table checksum query, valid in both engines: one row of
/// `(row count, SUM of hash bits 47..24, SUM of hash bits 23..0)` over
/// `FROM {from}` (a table, optionally followed by `WHERE …`), where each
/// row's hash is `MD5(row_text)`.
pub fn checksum_sql(row_text: &str, from: &str) -> String {
    format!(
        "SELECT COUNT(*), SUM(hi), SUM(lo) FROM (SELECT {} AS hi, {} AS lo FROM (SELECT MD5({row_text}) AS rh FROM {from}) hashed) halves",
        hex_to_int("rh", 1, 6),
        hex_to_int("rh", 7, 6)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(name: &str, pg_type: PgType, scale: Option<i32>) -> TargetColumn {
        TargetColumn {
            name: name.into(),
            pg_type,
            type_name: format!("{pg_type:?}").to_lowercase(),
            char_max_length: None,
            numeric_precision: scale.map(|_| 18),
            numeric_scale: scale,
            nullable: true,
        }
    }

    fn source(name: &str, data_type: &str, scale: Option<i64>) -> SourceColumn {
        SourceColumn { name: name.into(), data_type: data_type.into(), scale, char_length: None }
    }

    #[test]
    fn number_is_compared_at_the_larger_of_source_and_target_scale() {
        let e = snowflake_expr(&source("Rate", "NUMBER", Some(2)), &target("rate", PgType::Numeric, Some(4)));
        assert_eq!(e, r#"CAST(CAST("Rate" AS NUMBER(38, 4)) AS VARCHAR)"#);
        let e = snowflake_expr(&source("Rate", "NUMBER", Some(4)), &target("rate", PgType::Numeric, Some(1)));
        assert_eq!(e, r#"CAST(CAST("Rate" AS NUMBER(38, 4)) AS VARCHAR)"#);
        assert_eq!(postgres_expr(&source("Rate", "NUMBER", Some(4)), &target("rate", PgType::Numeric, Some(1))), r#"CAST(ROUND(CAST("rate" AS NUMERIC), 4) AS VARCHAR)"#);
        let e = snowflake_expr(&source("Rate", "NUMBER", Some(2)), &target("rate", PgType::Numeric, None));
        assert_eq!(e, r#"CAST(CAST("Rate" AS NUMBER(38, 2)) AS VARCHAR)"#);
    }

    #[test]
    fn timestamp_into_date_is_compared_at_the_source_precision() {
        let s = source("At", "TIMESTAMP_NTZ", None);
        let e = snowflake_expr(&s, &target("at", PgType::Date, None));
        assert_eq!(e, r#"CAST(DATEDIFF(microsecond, '1970-01-01 00:00:00'::TIMESTAMP_NTZ, "At") AS VARCHAR)"#);
        assert_eq!(postgres_expr(&s, &target("at", PgType::Date, None)), r#"CAST(CAST("at" - DATE '1970-01-01' AS BIGINT) * 86400000000 AS VARCHAR)"#);
    }

    #[test]
    fn timestamp_tz_into_date_compares_the_date_only_on_the_emulator() {
        let (s, t) = (source("At", "TIMESTAMP_TZ", None), target("at", PgType::Date, None));
        assert!(snowflake_expr(&s, &t).contains(r#"CAST("At" AS TIMESTAMP_NTZ)"#), "real Snowflake: the full wall clock");
        let EmulatorPart::Sql(e) = emulator_part(&s, &t) else { panic!("SQL expected") };
        assert!(e.contains(r#"CAST(CAST("At" AS DATE) AS TIMESTAMP_NTZ)"#), "{e}");
        let ntz = source("At", "TIMESTAMP_NTZ", None);
        assert_eq!(emulator_part(&ntz, &t), EmulatorPart::Sql(snowflake_expr(&ntz, &t)));
    }

    #[test]
    fn timestamp_tz_into_naive_timestamp_uses_the_stored_offset_wall_clock() {
        let e = snowflake_expr(&source("At", "TIMESTAMP_TZ", None), &target("at", PgType::Timestamp, None));
        assert!(e.contains(r#"CAST("At" AS TIMESTAMP_NTZ)"#), "{e}");
        let e = snowflake_expr(&source("At", "TIMESTAMP_TZ", None), &target("at", PgType::Timestamptz, None));
        assert!(e.contains("CONVERT_TIMEZONE('UTC', \"At\")"), "{e}");
    }

    #[test]
    fn floats_render_shortest_round_trip_digits_with_explicit_specials() {
        let cases = [
            (1.5, "1.5e0"),
            (100.0, "1e2"),
            (0.1 + 0.2, "3.0000000000000004e-1"),
            (1e-7, "1e-7"),
            (1e308, "1e308"),
            (-2.5e-300, "-2.5e-300"),
            (5e-324, "5e-324"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (0.0, "0"),
            (-0.0, "-0"),
        ];
        for (x, want) in cases {
            assert_eq!(canonical_float(x), want, "{x:?}");
        }
    }

    #[test]
    fn json_ignores_key_order_and_number_spelling_but_not_null_or_empty_string() {
        let j = |s: &str| canonical_json(&serde_json::from_str(s).unwrap());
        assert_eq!(j(r#"{"b": 1e-7, "a": [1, 2.50]}"#), j(r#"{"a":[1.0,2.5],"b":0.0000001}"#));
        assert_eq!(j(r#"{"b": 1e-7, "a": [1, 2.50]}"#), r#"$."a"[0]=1e0,$."a"[1]=2.5e0,$."b"=1e-7"#);
        assert_ne!(j("null"), j(r#""""#));
        assert_eq!(j("null"), "$=null");
        assert_eq!(j(r#""""#), r#"$="""#);
        assert_eq!(j(r#"{"x": {}, "y": [], "z": "a\nb"}"#), r#"$."x"={},$."y"=[],$."z"="a\nb""#);
        assert_ne!(j("[1, 2]"), j("[2, 1]"), "array order matters");
        assert_eq!(j("[-0, -0.0, 0e5]"), "$[0]=0,$[1]=0,$[2]=0", "jsonb holds no -0");
        assert_eq!(j(r#"{"b": 1, "a": [], "a\"": {}}"#), r#"$."a"=[],$."a\""={},$."b"=1e0"#);
    }

    #[test]
    fn postgres_json_and_large_floats_call_the_migrated_functions() {
        let v = source("V", "VARIANT", None);
        assert_eq!(postgres_expr(&v, &target("v", PgType::Jsonb, None)), r#"thaw_reconcile.canonical_json(CAST("v" AS JSONB))"#);
        assert!(POSTGRES_FUNCTIONS_MISSING_SQL.contains(POSTGRES_JSON_FUNCTION) && POSTGRES_FUNCTIONS_MISSING_SQL.contains(POSTGRES_FLOAT_FUNCTION));
        let f = source("F", "FLOAT", None);
        assert!(postgres_expr(&f, &target("f", PgType::Float8, None)).contains(r#"WHEN ABS(CAST("f" AS FLOAT8)) >= 1e14 THEN thaw_reconcile.canonical_float(CAST("f" AS FLOAT8))"#));
        let e = postgres_functions_missing("analytics");
        assert_eq!(e.kind, crate::error::ErrorKind::SchemaMismatch);
        assert!(e.message.contains("database analytics") && e.message.contains("run `thaw migrate`"), "{e}");
    }

    #[test]
    fn real_snowflake_sql_calls_the_javascript_functions_and_the_emulator_streams() {
        let f = source("F", "FLOAT", None);
        let v = source("V", "VARIANT", None);
        let t = source("T", "TEXT", None);
        assert_eq!(snowflake_expr(&f, &target("f", PgType::Float8, None)), r#"THAW_CANON_FLOAT("F")"#);
        assert_eq!(snowflake_expr(&v, &target("v", PgType::Jsonb, None)), r#"THAW_CANON_JSON("V")"#);
        assert_eq!(snowflake_expr(&t, &target("t", PgType::Json, None)), r#"THAW_CANON_JSON(TRY_PARSE_JSON("T"))"#);
        assert_eq!(emulator_part(&f, &target("f", PgType::Float4, None)), EmulatorPart::Float(r#""F""#.into()));
        assert_eq!(emulator_part(&v, &target("v", PgType::Json, None)), EmulatorPart::Json(r#"TO_JSON("V")"#.into()));
        assert!(matches!(emulator_part(&t, &target("t", PgType::Text, None)), EmulatorPart::Sql(_)));
        let functions = snowflake_functions();
        assert_eq!(functions.len(), 2);
        for (sql, name) in functions.iter().zip(SNOWFLAKE_FUNCTIONS) {
            assert!(sql.starts_with(&format!("CREATE OR REPLACE TEMPORARY FUNCTION {name}(")), "{sql}");
            assert!(sql.contains("LANGUAGE JAVASCRIPT STRICT IMMUTABLE AS $$") && sql.trim_end().ends_with("$$"), "{sql}");
            assert!(!sql[sql.find("$$").unwrap() + 2..sql.len() - 2].contains("$$"), "the body must not close the literal early");
        }
        assert!(functions[0].contains("return fl(F);"));
        assert!(functions[1].contains("walk('$', V, out); out.sort(cmp)"));
        assert!(functions[1].contains("fl(v === 0 ? 0 : v)"), "a JSON -0 renders as 0, as in Rust and jsonb");
    }

    #[test]
    fn row_text_marks_nulls_and_separates_columns() {
        assert_eq!(row_text(&["a".into(), "b".into()]), "COALESCE(a, CHR(30)) || CHR(31) || COALESCE(b, CHR(30))");
    }

    #[test]
    fn postgres_renders_integers_and_numerics_at_their_own_scale_without_round() {
        let int8 = target("n", PgType::Int8, None);
        assert_eq!(postgres_expr(&source("N", "NUMBER", Some(0)), &int8), r#"CAST("n" AS TEXT)"#);
        assert_eq!(postgres_expr(&source("N", "NUMBER", Some(2)), &int8), r#"CAST("n" AS TEXT) || '.00'"#);
        let numeric4 = target("n", PgType::Numeric, Some(4));
        assert_eq!(postgres_expr(&source("N", "NUMBER", Some(2)), &numeric4), r#"CAST("n" AS TEXT)"#, "numeric(p,4) holds scale 4");
        // Unconstrained: the source scale, or the value's own text when it holds more decimals.
        assert_eq!(
            postgres_expr(&source("N", "NUMBER", Some(2)), &target("n", PgType::Numeric, None)),
            r#"CASE WHEN "n" = ROUND("n", 2) THEN CAST(ROUND("n", 2) AS VARCHAR) ELSE CAST("n" AS VARCHAR) END"#
        );
    }

    #[test]
    fn postgres_reads_hex_digits_by_one_bit_cast() {
        assert_eq!(postgres_hex_to_int("h", 12), "CAST(CAST('x' || LEFT(h, 12) AS BIT(48)) AS BIGINT)");
    }

    #[test]
    fn hex_digits_are_weighted_by_position() {
        let sql = hex_to_int("h", 1, 2);
        assert_eq!(sql, "(POSITION(SUBSTR(h, 1, 1) IN '0123456789abcdef') - 1) * 16 + (POSITION(SUBSTR(h, 2, 1) IN '0123456789abcdef') - 1) * 1");
    }
}
