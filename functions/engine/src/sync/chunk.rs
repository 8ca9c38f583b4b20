//! Typed chunks and the pure packers that produce them (docs/sync.md §3).
//!
//! A [`ChunkSpec`] says which rows of a table one chunk holds, as data: a
//! single chunk, a numeric, date or keyset range, a list of values (grouped
//! values), the rows whose key is NULL, or one spec within another (a day
//! split by ranges of a second key). [`crate::source::predicate`] renders a
//! spec as Snowflake or PostgreSQL SQL; [`ChunkSpec::matches`] evaluates it in
//! Rust with SQL's three-valued logic, which is how the property tests prove
//! that the packers' chunks partition the rows exactly without a database.
//!
//! The packers are pure functions of the planning aggregates (counts per
//! bucket, per day, per value; sampled boundaries); `plan` runs the queries
//! and feeds them in:
//! * [`NumericPlanner`]: equal-width histogram buckets packed greedily into
//!   ranges, with buckets over the batch refined by finer histograms until
//!   they hold one value;
//! * [`pack_days`]: whole days packed greedily; a day over the batch is
//!   returned for splitting by a second key ([`keyset_specs`]);
//! * [`keyset_specs`]: half-open text ranges between sampled boundaries;
//! * [`pack_values`]: distinct values packed by their row counts
//!   (first-fit decreasing) into value lists.
//!
//! **The bound.** Every chunk holds at most `batch` rows (the planner's
//! rows-per-chunk, at most `chunk_byte_budget / row bytes`, so at most the
//! byte budget, and lowered by [`spread_batch`] so every worker gets a chunk) *except* when one key value alone holds more: such a value
//! gets a chunk of its own (numeric, grouped values, a day without a second
//! key), because rows with the same key cannot be split by that key. A
//! keyset range holds at most `batch` rows besides the rows of its lower
//! boundary value (exactly `batch` for unique keys).

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// How a chunking column's values are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    /// An integer column, compared as a number.
    Integer,
    /// A text column holding integers, cast to `NUMBER(38,0)` (Snowflake) or
    /// `numeric` (PostgreSQL) before comparing.
    IntegerText,
    /// A date or timestamp column, compared by its day (`CAST(k AS DATE)`).
    Day,
    /// A text column, compared in code-point (byte) order: Snowflake's
    /// default, `COLLATE "C"` in PostgreSQL.
    Text,
    /// Any other type (a second key of a split day): compared with quoted
    /// literals the database casts to the column's type.
    Other,
}

/// A chunking column: its exact (source) name and how it is compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyColumn {
    /// Exact column name (quoted when rendered).
    pub name: String,
    /// How its values are compared.
    pub kind: KeyKind,
}

impl KeyColumn {
    /// A key column named `name` compared as `kind`.
    pub fn new(name: impl Into<String>, kind: KeyKind) -> Self {
        KeyColumn { name: name.into(), kind }
    }
}

/// One value of a chunking column (already converted the way the column is
/// compared: a day for [`KeyKind::Day`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyValue {
    /// An integer (stored as decimal text: JSON numbers lose digits).
    Integer(#[serde(with = "integer_text")] i128),
    /// A day.
    Day(NaiveDate),
    /// Text (also any [`KeyKind::Other`] value, as the database prints it).
    Text(String),
}

/// Which rows of a table one chunk holds. Ranges are half-open
/// (`from <= k < to`), an absent bound is open; ranges and value lists match
/// a NULL key only with `with_nulls` (three-valued logic otherwise). NULL
/// keys counted at planning get their own [`ChunkSpec::Nulls`] chunk; when
/// there were none, the last range (the first keyset range) takes them, so a
/// key that turns NULL after planning is still copied exactly once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChunkSpec {
    /// Every row (the single strategy).
    All,
    /// `from <= k < to` on an integer key.
    NumericRange {
        /// The key.
        column: KeyColumn,
        /// Inclusive lower bound; `None` = open below.
        #[serde(with = "optional_integer_text")]
        from: Option<i128>,
        /// Exclusive upper bound; `None` = open above.
        #[serde(with = "optional_integer_text")]
        to: Option<i128>,
        /// Whether rows with a NULL key belong to this chunk too.
        #[serde(default)]
        with_nulls: bool,
    },
    /// `from <= CAST(k AS DATE) < to` on a date or timestamp key.
    DateRange {
        /// The key.
        column: KeyColumn,
        /// First day; `None` = open below.
        from: Option<NaiveDate>,
        /// First day after the chunk; `None` = open above.
        to: Option<NaiveDate>,
        /// Whether rows with a NULL key belong to this chunk too.
        #[serde(default)]
        with_nulls: bool,
    },
    /// `from <= k < to` on a text (or other) key; `with_nulls` adds `OR k IS NULL`.
    KeysetRange {
        /// The key.
        column: KeyColumn,
        /// Inclusive lower bound; `None` = open below.
        from: Option<String>,
        /// Exclusive upper bound; `None` = open above.
        to: Option<String>,
        /// Whether rows with a NULL key belong to this chunk too.
        with_nulls: bool,
    },
    /// `k IN (values)` (grouped values).
    Values {
        /// The key.
        column: KeyColumn,
        /// The values (never empty, no duplicates).
        values: Vec<KeyValue>,
    },
    /// `k IS NOT NULL AND k NOT IN (values)`: the last grouped-values chunk,
    /// which also takes values that appear after planning (and NULL keys
    /// with `with_nulls`).
    OtherValues {
        /// The key.
        column: KeyColumn,
        /// Values held by the other chunks (may be empty: every non-NULL key).
        values: Vec<KeyValue>,
        /// Whether rows with a NULL key belong to this chunk too.
        #[serde(default)]
        with_nulls: bool,
    },
    /// `k IS NULL`.
    Nulls {
        /// The key.
        column: KeyColumn,
    },
    /// Rows matching both (`outer AND inner`): a day split by a second key.
    Within {
        /// The wider chunk.
        outer: Box<ChunkSpec>,
        /// The part of it.
        inner: Box<ChunkSpec>,
    },
}

/// Integers as decimal text in JSON (`"-12"`): exact for NUMBER(38,0).
mod integer_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &i128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i128, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// [`integer_text`] for optional bounds (`null` = open).
mod optional_integer_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<i128>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_str(&v.to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i128>, D::Error> {
        Option::<String>::deserialize(d)?.map(|t| t.parse().map_err(serde::de::Error::custom)).transpose()
    }
}

/// A chunk with the row count the planning aggregates gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedChunk {
    /// Which rows.
    pub spec: ChunkSpec,
    /// Rows counted for it at planning time.
    pub estimated_rows: u64,
}

impl ChunkSpec {
    /// Whether a row belongs to the chunk, with SQL's three-valued logic
    /// (a NULL key never matches a range or a value list). `key` returns the
    /// row's value of a key column as the column is compared (the day of a
    /// timestamp), `None` for NULL.
    pub fn matches(&self, key: &dyn Fn(&KeyColumn) -> Option<KeyValue>) -> bool {
        match self {
            ChunkSpec::All => true,
            ChunkSpec::NumericRange { column, from, to, with_nulls } => match key(column) {
                Some(KeyValue::Integer(v)) => from.is_none_or(|f| v >= f) && to.is_none_or(|t| v < t),
                None => *with_nulls,
                _ => false,
            },
            ChunkSpec::DateRange { column, from, to, with_nulls } => match key(column) {
                Some(KeyValue::Day(d)) => from.is_none_or(|f| d >= f) && to.is_none_or(|t| d < t),
                None => *with_nulls,
                _ => false,
            },
            ChunkSpec::KeysetRange { column, from, to, with_nulls } => match key(column) {
                None => *with_nulls,
                Some(v) => {
                    let text = value_text(&v);
                    from.as_deref().is_none_or(|f| text.as_str() >= f) && to.as_deref().is_none_or(|t| text.as_str() < t)
                }
            },
            ChunkSpec::Values { column, values } => key(column).is_some_and(|v| values.contains(&v)),
            ChunkSpec::OtherValues { column, values, with_nulls } => key(column).map_or(*with_nulls, |v| !values.contains(&v)),
            ChunkSpec::Nulls { column } => key(column).is_none(),
            ChunkSpec::Within { outer, inner } => outer.matches(key) && inner.matches(key),
        }
    }

    /// The key columns the spec reads (outer first).
    pub fn columns(&self) -> Vec<&KeyColumn> {
        match self {
            ChunkSpec::All => Vec::new(),
            ChunkSpec::NumericRange { column, .. }
            | ChunkSpec::DateRange { column, .. }
            | ChunkSpec::KeysetRange { column, .. }
            | ChunkSpec::Values { column, .. }
            | ChunkSpec::OtherValues { column, .. }
            | ChunkSpec::Nulls { column } => vec![column],
            ChunkSpec::Within { outer, inner } => {
                let mut c = outer.columns();
                c.extend(inner.columns());
                c
            }
        }
    }
}

/// A value as text, the way keyset boundaries compare it.
fn value_text(v: &KeyValue) -> String {
    match v {
        KeyValue::Integer(i) => i.to_string(),
        KeyValue::Day(d) => d.to_string(),
        KeyValue::Text(t) => t.clone(),
    }
}

/// One chunk for every row: `rows` counted.
pub fn single(rows: u64) -> Vec<PlannedChunk> {
    vec![PlannedChunk { spec: ChunkSpec::All, estimated_rows: rows }]
}

/// Fewest rows per chunk [`spread_batch`] makes when it spreads a table
/// over the workers: 5 000. Below it a chunk's fixed cost (its source
/// query, staging table, status row) outweighs what another worker gains.
pub const MIN_SPREAD_ROWS: u64 = 5_000;

/// Rows per chunk for a table of `rows` rows (counted at planning), at most
/// `batch` rows per chunk, copied by `workers` parallel workers: `batch`,
/// lowered to about `rows / workers` (rounded up) when that is smaller, so
/// every worker gets a chunk instead of one worker copying most of the
/// table while the others idle (issue 7: an incremental night of 29 119
/// rows made chunks of 24 999 and 4 120 rows for 4 workers). Never below
/// `floor` rows (nor above `batch`): a table of fewer than
/// `workers × floor` rows makes fewer, larger chunks, and one of at most
/// `floor` rows stays one chunk. The planner passes [`MIN_SPREAD_ROWS`];
/// tests pass small floors. Always ≥ 1 (docs/sync.md §3.3, decision S4).
pub fn spread_batch(rows: u64, batch: u64, workers: usize, floor: u64) -> u64 {
    let batch = batch.max(1);
    let per_worker = rows.div_ceil((workers as u64).max(1));
    per_worker.max(floor).clamp(1, batch)
}

/// Most buckets one histogram query asks for: 20 000 rows of result.
pub const MAX_HISTOGRAM_BUCKETS: i128 = 20_000;

/// Buckets per wanted chunk in a histogram: 8, so greedy packing lands
/// close to the batch.
pub const BUCKETS_PER_CHUNK: i128 = 8;

/// A histogram query the numeric planner needs: the non-NULL rows with
/// `from <= k < to`, counted per bucket `FLOOR((k - from) / width)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistogramRequest {
    /// Inclusive lower end.
    pub from: i128,
    /// Exclusive upper end.
    pub to: i128,
    /// Bucket width (values per bucket, ≥ 1).
    pub width: i128,
}

/// A bucket `[from, to)` with its row count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bucket {
    from: i128,
    to: i128,
    rows: u64,
}

/// Plans the numeric-range strategy from histograms: the caller asks for
/// [`NumericPlanner::next_request`], runs it, passes the result to
/// [`NumericPlanner::feed`], and calls [`NumericPlanner::finish`] when there
/// is no request left. A bucket holding more than the batch is refined by a
/// histogram of its own range until its width is one value, so every chunk
/// holds at most `batch` rows unless a single key value holds more
/// (module docs). The ranges cover every integer (the first is open below,
/// the last open above) and NULL keys get their own chunk, so the chunks
/// partition the rows even if the table changed since the counts were taken.
#[derive(Debug, Clone)]
pub struct NumericPlanner {
    column: KeyColumn,
    batch: u64,
    nulls: u64,
    pending: Vec<HistogramRequest>,
    buckets: Vec<Bucket>,
    done: Option<Vec<PlannedChunk>>,
}

impl NumericPlanner {
    /// Start from the table's aggregates: `total` rows, `non_null` of them
    /// with a key, the key's `min` and `max` (`None` when every key is NULL),
    /// and the rows-per-chunk `batch` (≥ 1).
    pub fn new(column: KeyColumn, total: u64, non_null: u64, min: Option<i128>, max: Option<i128>, batch: u64) -> Self {
        let batch = batch.max(1);
        let mut p = NumericPlanner { column, batch, nulls: total.saturating_sub(non_null), pending: Vec::new(), buckets: Vec::new(), done: None };
        match (min, max) {
            _ if total <= batch => p.done = Some(single(total)),
            (Some(min), Some(max)) if min <= max => {
                let to = max.saturating_add(1);
                p.pending.push(HistogramRequest { from: min, to, width: bucket_width(to - min, non_null, batch) });
            }
            // Every key NULL: one chunk, which also takes keys set later.
            _ => p.done = Some(single(total)),
        }
        p
    }

    /// The next histogram to run, if any.
    pub fn next_request(&mut self) -> Option<HistogramRequest> {
        self.pending.pop()
    }

    /// The result of `request`: `(bucket index, rows)` pairs (any order,
    /// empty buckets may be missing).
    pub fn feed(&mut self, request: HistogramRequest, counts: &[(i128, u64)]) {
        for &(index, rows) in counts {
            if rows == 0 {
                continue;
            }
            let from = request.from + index * request.width;
            let to = (from + request.width).min(request.to);
            if from >= to {
                continue;
            }
            if rows > self.batch && to - from > 1 {
                self.pending.push(HistogramRequest { from, to, width: bucket_width(to - from, rows, self.batch) });
            } else {
                self.buckets.push(Bucket { from, to, rows });
            }
        }
    }

    /// The chunks, once [`NumericPlanner::next_request`] returned `None`.
    pub fn finish(mut self) -> Vec<PlannedChunk> {
        if let Some(done) = self.done.take() {
            return done;
        }
        self.buckets.sort_by_key(|b| b.from);
        // Greedy: consecutive buckets while the sum stays within the batch.
        let mut groups: Vec<(i128, u64)> = Vec::new(); // (first value, rows)
        for b in &self.buckets {
            match groups.last_mut() {
                Some(g) if g.1 + b.rows <= self.batch => g.1 += b.rows,
                _ => groups.push((b.from, b.rows)),
            }
        }
        if groups.is_empty() {
            groups.push((0, 0));
        }
        let mut out: Vec<PlannedChunk> = groups
            .iter()
            .enumerate()
            .map(|(i, &(from, rows))| PlannedChunk {
                spec: ChunkSpec::NumericRange {
                    column: self.column.clone(),
                    from: (i > 0).then_some(from),
                    to: groups.get(i + 1).map(|g| g.0),
                    with_nulls: self.nulls == 0 && i + 1 == groups.len(),
                },
                estimated_rows: rows,
            })
            .collect();
        if self.nulls > 0 {
            out.push(PlannedChunk { spec: ChunkSpec::Nulls { column: self.column.clone() }, estimated_rows: self.nulls });
        }
        out
    }
}

/// Width of equal buckets over `span` values holding `rows` rows: about
/// [`BUCKETS_PER_CHUNK`] buckets per wanted chunk, at most
/// [`MAX_HISTOGRAM_BUCKETS`], at least 2 (so a refinement always narrows).
fn bucket_width(span: i128, rows: u64, batch: u64) -> i128 {
    let chunks = (rows.div_ceil(batch.max(1)).max(1)) as i128;
    let buckets = (chunks * BUCKETS_PER_CHUNK).clamp(2, MAX_HISTOGRAM_BUCKETS);
    ((span + buckets - 1) / buckets).max(1)
}

/// What [`pack_days`] makes of the days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DayChunk {
    /// A finished chunk.
    Chunk(PlannedChunk),
    /// A single day with more rows than the batch: split it by a second key
    /// ([`keyset_specs`] with this spec as scope) or keep it whole.
    Oversized(PlannedChunk),
}

/// Pack consecutive days (`(day, rows)`, any order, no duplicates) into
/// date ranges of at most `batch` rows; a day over the batch is alone and
/// returned as [`DayChunk::Oversized`]. The ranges cover every day (first
/// open below, last open above), NULL keys get their own chunk (or ride
/// with the last range when there are none). Without any day: one chunk
/// for every row.
pub fn pack_days(column: &KeyColumn, days: &[(NaiveDate, u64)], nulls: u64, batch: u64) -> Vec<DayChunk> {
    let batch = batch.max(1);
    let mut days: Vec<(NaiveDate, u64)> = days.iter().copied().filter(|d| d.1 > 0).collect();
    days.sort();
    let mut groups: Vec<(NaiveDate, u64, usize)> = Vec::new(); // (first day, rows, days)
    for (d, n) in days {
        match groups.last_mut() {
            Some(g) if g.1 + n <= batch => {
                g.1 += n;
                g.2 += 1;
            }
            _ => groups.push((d, n, 1)),
        }
    }
    let mut out: Vec<DayChunk> = groups
        .iter()
        .enumerate()
        .map(|(i, &(from, rows, n_days))| {
            let chunk = PlannedChunk {
                spec: ChunkSpec::DateRange {
                    column: column.clone(),
                    from: (i > 0).then_some(from),
                    to: groups.get(i + 1).map(|g| g.0),
                    with_nulls: nulls == 0 && i + 1 == groups.len(),
                },
                estimated_rows: rows,
            };
            if rows > batch && n_days == 1 {
                DayChunk::Oversized(chunk)
            } else {
                DayChunk::Chunk(chunk)
            }
        })
        .collect();
    if out.is_empty() {
        // Every key NULL (or no rows): one chunk, which also takes days set later.
        return vec![DayChunk::Chunk(single(nulls).remove(0))];
    }
    if nulls > 0 {
        out.push(DayChunk::Chunk(PlannedChunk { spec: ChunkSpec::Nulls { column: column.clone() }, estimated_rows: nulls }));
    }
    out
}

/// Half-open ranges between sampled `bounds` (the key at every `batch`-th
/// row in key order; sorted, duplicates removed here): `k < b1 OR k IS NULL`
/// (NULLs ride with the first range when `scope` is `None`), `b1 <= k < b2`,
/// …, `k >= bn`, each within `scope` when given. `rows` is spread evenly as
/// the estimate. No bounds: one chunk (`scope`, or every row).
pub fn keyset_specs(column: &KeyColumn, bounds: &[String], rows: u64, scope: Option<&ChunkSpec>) -> Vec<PlannedChunk> {
    let mut bounds: Vec<String> = bounds.to_vec();
    bounds.sort();
    bounds.dedup();
    let wrap = |inner: ChunkSpec| match scope {
        Some(s) => ChunkSpec::Within { outer: Box::new(s.clone()), inner: Box::new(inner) },
        None => inner,
    };
    if bounds.is_empty() {
        let spec = scope.cloned().unwrap_or(ChunkSpec::All);
        return vec![PlannedChunk { spec, estimated_rows: rows }];
    }
    let per = rows / (bounds.len() as u64 + 1);
    let mut out = Vec::with_capacity(bounds.len() + 1);
    for i in 0..=bounds.len() {
        let from = (i > 0).then(|| bounds[i - 1].clone());
        let to = bounds.get(i).cloned();
        // Within a scope (a day), a NULL second key still belongs to the day.
        let spec = ChunkSpec::KeysetRange { column: column.clone(), from, to, with_nulls: i == 0 };
        out.push(PlannedChunk { spec: wrap(spec), estimated_rows: per });
    }
    out
}

/// Most values one grouped-values chunk lists: 1 000 (keeps the chunk's SQL
/// small; more values make more chunks).
pub const MAX_VALUES_PER_CHUNK: usize = 1_000;

/// Most distinct values the grouped-values strategy accepts: 10 000 (the
/// last chunk lists every other chunk's values in its `NOT IN`). A column
/// with more is not low-cardinality: use a range strategy.
pub const MAX_GROUPED_VALUES: usize = 10_000;

/// Pack distinct values by their row counts (`(value, rows)`, any order, no
/// duplicates) into value lists of at most `batch` rows and
/// [`MAX_VALUES_PER_CHUNK`] values: first-fit decreasing, so a value over
/// the batch gets a chunk of its own. The last chunk is written as
/// [`ChunkSpec::OtherValues`] (every non-NULL value not listed elsewhere),
/// so values that appear after planning are still copied; NULL keys get
/// their own chunk (or ride with the last when there are none). Values in
/// a chunk are sorted.
pub fn pack_values(column: &KeyColumn, values: &[(KeyValue, u64)], nulls: u64, batch: u64) -> Vec<PlannedChunk> {
    let batch = batch.max(1);
    let mut sorted: Vec<&(KeyValue, u64)> = values.iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut bins: Vec<(Vec<KeyValue>, u64)> = Vec::new();
    for (v, n) in sorted {
        let fit = bins.iter_mut().find(|b| b.1 + n <= batch && b.0.len() < MAX_VALUES_PER_CHUNK);
        match fit {
            Some(b) => {
                b.0.push(v.clone());
                b.1 += n;
            }
            None => bins.push((vec![v.clone()], *n)),
        }
    }
    for b in bins.iter_mut() {
        b.0.sort();
    }
    let mut out = Vec::with_capacity(bins.len() + 1);
    let last = bins.len().saturating_sub(1);
    let others: Vec<KeyValue> = {
        let mut all: Vec<KeyValue> = bins.iter().take(last).flat_map(|b| b.0.iter().cloned()).collect();
        all.sort();
        all
    };
    for (i, (vals, rows)) in bins.into_iter().enumerate() {
        let spec = if i == last {
            ChunkSpec::OtherValues { column: column.clone(), values: others.clone(), with_nulls: nulls == 0 }
        } else {
            ChunkSpec::Values { column: column.clone(), values: vals }
        };
        out.push(PlannedChunk { spec, estimated_rows: rows });
    }
    if out.is_empty() {
        // Every key NULL (or no rows): one chunk, which also takes values set later.
        return single(nulls);
    }
    if nulls > 0 {
        out.push(PlannedChunk { spec: ChunkSpec::Nulls { column: column.clone() }, estimated_rows: nulls });
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    fn int_col() -> KeyColumn {
        KeyColumn::new("k", KeyKind::Integer)
    }

    /// Every row matches exactly one chunk.
    fn assert_partition(chunks: &[PlannedChunk], rows: &[Option<KeyValue>]) -> Result<(), TestCaseError> {
        for r in rows {
            let hits = chunks.iter().filter(|c| c.spec.matches(&|_| r.clone())).count();
            prop_assert_eq!(hits, 1, "row {:?} matches {} chunks of {:?}", r, hits, chunks);
        }
        Ok(())
    }

    /// Rows per chunk, counted by evaluating the specs.
    fn actual_rows(chunk: &PlannedChunk, rows: &[Option<KeyValue>]) -> Vec<Option<KeyValue>> {
        rows.iter().filter(|r| chunk.spec.matches(&|_| (*r).clone())).cloned().collect()
    }

    /// Within the batch, or a single key value.
    fn assert_bound(chunks: &[PlannedChunk], rows: &[Option<KeyValue>], batch: u64) -> Result<(), TestCaseError> {
        for c in chunks {
            let held = actual_rows(c, rows);
            let mut distinct: Vec<&Option<KeyValue>> = held.iter().collect();
            distinct.sort();
            distinct.dedup();
            prop_assert!(
                held.len() as u64 <= batch || distinct.len() == 1,
                "chunk {:?} holds {} rows of {} values (batch {})",
                c.spec,
                held.len(),
                distinct.len(),
                batch
            );
        }
        Ok(())
    }

    /// Integer keys: skewed (a few heavy values), sparse (huge gaps),
    /// duplicate-heavy and NULL-bearing.
    fn int_keys() -> impl Strategy<Value = Vec<Option<i64>>> {
        prop_oneof![
            // sparse: values spread over a wide span
            prop::collection::vec(prop::option::weighted(0.9, -1_000_000_000_000i64..1_000_000_000_000), 0..400),
            // duplicate-heavy: a handful of values
            prop::collection::vec(prop::option::weighted(0.8, 0i64..6), 0..400),
            // skewed: one heavy value among a spread
            (prop::collection::vec(prop::option::weighted(0.95, 0i64..100_000), 0..200), 0i64..100_000, 0usize..300).prop_map(|(mut v, heavy, n)| {
                v.extend(std::iter::repeat_n(Some(heavy), n));
                v
            }),
            // dense small range
            prop::collection::vec(prop::option::of(-50i64..50), 0..400),
        ]
    }

    /// Run the numeric planner against in-memory rows, answering its
    /// histogram requests as the planning query would.
    fn plan_numeric(keys: &[Option<i64>], batch: u64) -> Vec<PlannedChunk> {
        let present: Vec<i128> = keys.iter().flatten().map(|&k| k as i128).collect();
        let mut p = NumericPlanner::new(
            int_col(),
            keys.len() as u64,
            present.len() as u64,
            present.iter().min().copied(),
            present.iter().max().copied(),
            batch,
        );
        let mut requests = 0;
        while let Some(r) = p.next_request() {
            requests += 1;
            assert!(requests < 10_000, "the planner does not converge");
            let mut hist: BTreeMap<i128, u64> = BTreeMap::new();
            for &k in present.iter().filter(|&&k| k >= r.from && k < r.to) {
                *hist.entry((k - r.from).div_euclid(r.width)).or_default() += 1;
            }
            p.feed(r, &hist.into_iter().collect::<Vec<_>>());
        }
        p.finish()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn numeric_chunks_partition_rows_within_the_batch(keys in int_keys(), batch in 1u64..80) {
            let chunks = plan_numeric(&keys, batch);
            let rows: Vec<Option<KeyValue>> = keys.iter().map(|k| k.map(|k| KeyValue::Integer(k as i128))).collect();
            assert_partition(&chunks, &rows)?;
            // A single-chunk plan is only made when everything fits.
            if chunks.len() == 1 && chunks[0].spec == ChunkSpec::All {
                prop_assert!(rows.len() as u64 <= batch);
            } else {
                assert_bound(&chunks, &rows, batch)?;
            }
            // Estimates are the real counts (the table did not change).
            for c in &chunks {
                prop_assert_eq!(c.estimated_rows as usize, actual_rows(c, &rows).len());
            }
            // Rows added after planning, anywhere, still land in exactly one chunk.
            let later: Vec<Option<KeyValue>> = [i64::MIN, -1, 0, 1, i64::MAX].iter().map(|&k| Some(KeyValue::Integer(k as i128))).chain([None]).collect();
            assert_partition(&chunks, &later)?;
        }

        #[test]
        fn day_chunks_partition_rows(days in prop::collection::vec(prop::option::weighted(0.9, 0i64..3000), 0..400), batch in 1u64..60) {
            let col = KeyColumn::new("d", KeyKind::Day);
            let epoch = NaiveDate::from_ymd_opt(2020, 1, 1).unwrap();
            let rows: Vec<Option<KeyValue>> = days.iter().map(|d| d.map(|d| KeyValue::Day(epoch + chrono::Days::new(d as u64)))).collect();
            let mut counts: BTreeMap<NaiveDate, u64> = BTreeMap::new();
            for r in rows.iter().flatten() {
                if let KeyValue::Day(d) = r { *counts.entry(*d).or_default() += 1; }
            }
            let nulls = rows.iter().filter(|r| r.is_none()).count() as u64;
            let packed = pack_days(&col, &counts.into_iter().collect::<Vec<_>>(), nulls, batch);
            let chunks: Vec<PlannedChunk> = packed.iter().map(|d| match d { DayChunk::Chunk(c) | DayChunk::Oversized(c) => c.clone() }).collect();
            assert_partition(&chunks, &rows)?;
            let later = [Some(KeyValue::Day(epoch)), Some(KeyValue::Day(epoch + chrono::Days::new(10_000))), None];
            assert_partition(&chunks, &later)?;
            assert_bound(&chunks, &rows, batch)?;
            for d in &packed {
                if let DayChunk::Oversized(c) = d {
                    prop_assert!(c.estimated_rows > batch);
                }
            }
        }

        #[test]
        fn split_days_partition_rows_with_second_keys(
            rows in prop::collection::vec((prop::option::weighted(0.95, 0i64..4), prop::option::weighted(0.95, "[a-e]{0,3}")), 1..300),
            batch in 1u64..40,
        ) {
            // A day column and a text second key; oversized days split by keyset ranges.
            let day = KeyColumn::new("d", KeyKind::Day);
            let second = KeyColumn::new("id", KeyKind::Text);
            let epoch = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
            let as_day = |d: i64| KeyValue::Day(epoch + chrono::Days::new(d as u64));
            let mut counts: BTreeMap<NaiveDate, u64> = BTreeMap::new();
            for (d, _) in &rows { if let Some(d) = d { *counts.entry(epoch + chrono::Days::new(*d as u64)).or_default() += 1; } }
            let nulls = rows.iter().filter(|r| r.0.is_none()).count() as u64;
            let mut chunks = Vec::new();
            for d in pack_days(&day, &counts.into_iter().collect::<Vec<_>>(), nulls, batch) {
                match d {
                    DayChunk::Chunk(c) => chunks.push(c),
                    DayChunk::Oversized(c) => {
                        // The boundary query: every batch-th second key (non-NULL) in key order within the day.
                        let mut keys: Vec<String> = rows.iter().filter(|(d, _)| c.spec.matches(&|_| d.map(as_day))).filter_map(|(_, k)| k.clone()).collect();
                        keys.sort();
                        let bounds: Vec<String> = keys.iter().enumerate().filter(|(i, _)| ((i + 1) as u64).is_multiple_of(batch)).map(|(_, k)| k.clone()).collect();
                        chunks.extend(keyset_specs(&second, &bounds, c.estimated_rows, Some(&c.spec)));
                    }
                }
            }
            for (d, k) in &rows {
                let key = |c: &KeyColumn| if c.name == "d" { d.map(as_day) } else { k.clone().map(KeyValue::Text) };
                let hits = chunks.iter().filter(|c| c.spec.matches(&key)).count();
                prop_assert_eq!(hits, 1, "row {:?} matches {} chunks", (d, k), hits);
            }
        }

        #[test]
        fn keyset_chunks_partition_text_keys(keys in prop::collection::vec(prop::option::weighted(0.9, "[a-c]{0,4}|é|z{1,2}"), 0..300), batch in 1u64..50) {
            let col = KeyColumn::new("code", KeyKind::Text);
            let rows: Vec<Option<KeyValue>> = keys.iter().map(|k| k.clone().map(KeyValue::Text)).collect();
            let mut sorted: Vec<String> = keys.iter().flatten().cloned().collect();
            sorted.sort();
            let bounds: Vec<String> = sorted.iter().enumerate().filter(|(i, _)| ((i + 1) as u64).is_multiple_of(batch)).map(|(_, k)| k.clone()).collect();
            let chunks = keyset_specs(&col, &bounds, rows.len() as u64, None);
            assert_partition(&chunks, &rows)?;
            // The keyset bound: batch rows besides those of the lower boundary value.
            for c in &chunks {
                let held = actual_rows(c, &rows);
                let lower = match &c.spec { ChunkSpec::KeysetRange { from, .. } => from.clone(), _ => None };
                let of_lower = held.iter().filter(|r| matches!((r, &lower), (Some(KeyValue::Text(t)), Some(l)) if t == l)).count() as u64;
                let nulls = held.iter().filter(|r| r.is_none()).count() as u64;
                prop_assert!(held.len() as u64 - of_lower - nulls <= batch, "{:?} holds {} rows", c.spec, held.len());
            }
        }

        #[test]
        fn grouped_values_partition_rows_within_the_batch(keys in int_keys(), batch in 1u64..80, later in prop::collection::vec(-10i64..10, 0..10)) {
            let col = int_col();
            let rows: Vec<Option<KeyValue>> = keys.iter().map(|k| k.map(|k| KeyValue::Integer(k as i128))).collect();
            let mut counts: BTreeMap<KeyValue, u64> = BTreeMap::new();
            for r in rows.iter().flatten() { *counts.entry(r.clone()).or_default() += 1; }
            let nulls = rows.iter().filter(|r| r.is_none()).count() as u64;
            let chunks = pack_values(&col, &counts.into_iter().collect::<Vec<_>>(), nulls, batch);
            assert_partition(&chunks, &rows)?;
            assert_bound(&chunks, &rows, batch)?;
            for c in &chunks {
                prop_assert_eq!(c.estimated_rows as usize, actual_rows(c, &rows).len());
                if let ChunkSpec::Values { values, .. } = &c.spec {
                    prop_assert!(values.len() <= MAX_VALUES_PER_CHUNK);
                }
            }
            // Values that appear after planning go to exactly one chunk (the last list's NOT IN).
            let later: Vec<Option<KeyValue>> = later.iter().map(|&k| Some(KeyValue::Integer(k as i128))).chain([None]).collect();
            assert_partition(&chunks, &later)?;
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn spread_chunks_partition_rows_and_give_every_worker_one(
            n in 0u64..400,
            step in 1i64..5,
            batch in 1u64..500,
            workers in 1usize..9,
            floor in 1u64..40,
        ) {
            let rows = n;
            let per = spread_batch(rows, batch, workers, floor);
            prop_assert!(per >= 1 && per <= batch, "spread {} of batch {}", per, batch);
            prop_assert!(per >= floor.min(batch), "spread {} under the floor {}", per, floor);
            let w = workers as u64;
            // Unique keys, numeric and text: each chunk is within the spread size.
            let keys: Vec<Option<i64>> = (0..n as i64).map(|k| Some(k * step - 200)).collect();
            let int_rows: Vec<Option<KeyValue>> = keys.iter().map(|k| k.map(|k| KeyValue::Integer(k as i128))).collect();
            let numeric = plan_numeric(&keys, per);
            assert_partition(&numeric, &int_rows)?;
            let text: Vec<String> = (0..n).map(|k| format!("v{k:05}")).collect();
            let text_rows: Vec<Option<KeyValue>> = text.iter().map(|k| Some(KeyValue::Text(k.clone()))).collect();
            let bounds: Vec<String> = text.iter().enumerate().filter(|(i, _)| ((*i + 1) as u64).is_multiple_of(per)).map(|(_, k)| k.clone()).collect();
            // As the planner: a table within the spread size is one chunk.
            let keyset = if rows <= per { single(rows) } else { keyset_specs(&KeyColumn::new("code", KeyKind::Text), &bounds, rows, None) };
            assert_partition(&keyset, &text_rows)?;
            for chunks in [&numeric, &keyset] {
                if chunks.len() > 1 {
                    assert_bound(chunks, if std::ptr::eq(chunks, &numeric) { &int_rows } else { &text_rows }, per)?;
                }
                // Rows at most the floor (and the batch) stay one chunk.
                if rows <= floor.min(batch) {
                    prop_assert_eq!(chunks.len(), 1);
                }
                // Every worker gets a chunk when the rows allow: rows /
                // workers is within [floor, batch] and there are at least
                // workers × (workers − 1) rows.
                let share = rows.div_ceil(w);
                if share >= floor && share <= batch && rows >= w * (w - 1) && rows > 0 {
                    prop_assert!(chunks.len() >= workers, "{} chunks of {} rows for {} workers (spread {})", chunks.len(), rows, workers, per);
                }
            }
        }
    }

    #[test]
    fn an_incremental_night_spreads_over_the_workers() {
        // Issue 7: 29 119 rows of one day, batch 25 000, 4 workers made
        // chunks of 24 999 and 4 120 rows; spread, four chunks of ≤ 7 280.
        assert_eq!(spread_batch(29_119, 25_000, 4, MIN_SPREAD_ROWS), 7_280);
        // A full load over workers × batch keeps the batch.
        assert_eq!(spread_batch(291_108, 25_000, 4, MIN_SPREAD_ROWS), 25_000);
        // Small tables: the floor, so at most one chunk per floor's rows.
        assert_eq!(spread_batch(12_000, 25_000, 4, MIN_SPREAD_ROWS), MIN_SPREAD_ROWS);
        assert_eq!(spread_batch(3_000, 25_000, 4, MIN_SPREAD_ROWS), MIN_SPREAD_ROWS);
        // The batch (and the byte budget within it) still caps it.
        assert_eq!(spread_batch(3_000, 10, 4, MIN_SPREAD_ROWS), 10);
        assert_eq!(spread_batch(0, 0, 0, 0), 1);
    }

    #[test]
    fn a_heavy_numeric_value_gets_its_own_chunk() {
        let mut keys: Vec<Option<i64>> = (0..100).map(Some).collect();
        keys.extend(std::iter::repeat_n(Some(50), 500));
        let chunks = plan_numeric(&keys, 40);
        let heavy: Vec<&PlannedChunk> = chunks.iter().filter(|c| c.estimated_rows > 40).collect();
        assert_eq!(heavy.len(), 1, "{chunks:?}");
        let ChunkSpec::NumericRange { from: Some(50), to: Some(51), with_nulls: false, .. } = heavy[0].spec else { panic!("{:?}", heavy[0]) };
    }

    #[test]
    fn grouped_values_lists_are_sorted_and_the_last_takes_the_rest() {
        let col = KeyColumn::new("provider", KeyKind::Integer);
        let counts: Vec<(KeyValue, u64)> = [(3, 60), (1, 30), (2, 30), (4, 5)].iter().map(|&(v, n)| (KeyValue::Integer(v), n)).collect();
        let chunks = pack_values(&col, &counts, 7, 60);
        let specs: Vec<&ChunkSpec> = chunks.iter().map(|c| &c.spec).collect();
        assert_eq!(
            specs,
            vec![
                &ChunkSpec::Values { column: col.clone(), values: vec![KeyValue::Integer(3)] },
                &ChunkSpec::Values { column: col.clone(), values: vec![KeyValue::Integer(1), KeyValue::Integer(2)] },
                &ChunkSpec::OtherValues {
                    column: col.clone(),
                    values: vec![KeyValue::Integer(1), KeyValue::Integer(2), KeyValue::Integer(3)],
                    with_nulls: false
                },
                &ChunkSpec::Nulls { column: col },
            ]
        );
        assert_eq!(chunks.iter().map(|c| c.estimated_rows).collect::<Vec<_>>(), vec![60, 60, 5, 7]);
    }

    #[test]
    fn specs_round_trip_through_json() {
        let spec = ChunkSpec::Within {
            outer: Box::new(ChunkSpec::DateRange {
                column: KeyColumn::new("Day", KeyKind::Day),
                from: NaiveDate::from_ymd_opt(2024, 1, 2),
                to: None,
                with_nulls: false,
            }),
            inner: Box::new(ChunkSpec::KeysetRange {
                column: KeyColumn::new("Id", KeyKind::Other),
                from: None,
                to: Some("17".into()),
                with_nulls: true,
            }),
        };
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["kind"], "within");
        assert_eq!(serde_json::from_value::<ChunkSpec>(json).unwrap(), spec);
        let big = ChunkSpec::NumericRange {
            column: KeyColumn::new("k", KeyKind::IntegerText),
            from: Some(i64::MAX as i128 * 4),
            to: None,
            with_nulls: true,
        };
        assert_eq!(serde_json::from_str::<ChunkSpec>(&serde_json::to_string(&big).unwrap()).unwrap(), big);
    }
}
