//! `GroupID`: connected components of the conflict graph (docs/conflicts.md
//! §7.6, §D5).
//!
//! The graph's vertices are visits (and in-service/PTO events); every stored
//! `conflictvisitmaps` row with a `CONFLICTID` is an edge `VisitID —
//! ConVisitID`. Two rows are in one group when a chain of rows sharing a
//! visit links them — the true transitive closure, where \[SF\] stopped after
//! three levels of link expansion.
//!
//! Ids are stable once assigned:
//! * a component whose rows carry group ids keeps the **oldest** of them (the
//!   smallest: ids are handed out increasing), so a growing group keeps its
//!   id and two merging groups keep the older one; its `G_CRDATEUNIQUE`
//!   (when the id was first assigned) is the earliest one stored with that id;
//! * a component without any id gets `max(GroupID) + n`, numbered in the
//!   order of its smallest visit id (as \[SF\]'s dense rank over its group
//!   label), with `G_CRDATEUNIQUE` = now;
//! * only rows whose `GroupID` or `G_CRDATEUNIQUE` change are written
//!   (binary COPY into a temporary table, one joined `UPDATE` by `ID`).
//!
//! Only the components a night touched are read ([`assign`]): thaw never
//! deletes a row and a row's `VisitID`/`ConVisitID` never change, so the
//! graph changes only by the night's new rows, which are the rows without a
//! `GroupID` (or `G_CRDATEUNIQUE`). Their components are found by a walk
//! from their visits through the `VisitID` and `ConVisitID` indexes (a few
//! round trips, one per step of the longest path from a new row); every
//! other row is neither read nor rewritten. A component that loses rows
//! (the application deleted them) and splits keeps its id in every part
//! (each part's oldest stored id is the same id), so it needs no rewrite
//! either. Cost: proportional to the rows of the touched components
//! (union–find, near-linear); a night with more than
//! [`CLOSURE_MAX_PENDING`] new rows (a first run) reads every row once instead.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use futures::{pin_mut, TryStreamExt};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Transaction;
use uuid::Uuid;

use super::store::{written_columns, Schemas, Table};
use crate::error::{from_postgres, Result};
use crate::sink::qualified;

/// One stored row as read for grouping.
#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    /// `ID` (surrogate key).
    pub id: i64,
    /// `VisitID`.
    pub visit: Uuid,
    /// `ConVisitID`.
    pub con_visit: Uuid,
    /// Stored `GroupID`.
    pub group: Option<i64>,
    /// Stored `G_CRDATEUNIQUE`.
    pub group_created: Option<NaiveDateTime>,
}

/// The group of one row after [`components`]: `created` `None` means "now"
/// (a new id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assignment {
    /// `ID` of the row.
    pub id: i64,
    /// Its `GroupID`.
    pub group: i64,
    /// Its `G_CRDATEUNIQUE`; `None` for a newly assigned id (set to now).
    pub created: Option<NaiveDateTime>,
}

struct UnionFind {
    parent: Vec<usize>,
}

impl UnionFind {
    fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.parent[ra.max(rb)] = ra.min(rb);
        }
    }
}

/// The group of every row of `edges` (pure; see the module docs for the
/// rules). Returns only the rows whose `GroupID` or `G_CRDATEUNIQUE` change.
pub fn components(edges: &[Edge]) -> Vec<Assignment> {
    let top = edges.iter().filter_map(|e| e.group).max().unwrap_or(0);
    components_within(edges, top, &HashMap::new())
}

/// [`components`] over whole components of a larger graph: `edges` holds
/// every row of the components it touches, `top` is the largest `GroupID`
/// stored anywhere (new ids count on from it), `created_elsewhere` the
/// earliest `G_CRDATEUNIQUE` of group ids also carried by rows outside
/// `edges` (the parts of a split group). Same result as [`components`] over
/// the whole graph for these rows.
pub fn components_within(edges: &[Edge], top: i64, created_elsewhere: &HashMap<i64, NaiveDateTime>) -> Vec<Assignment> {
    let mut index: HashMap<Uuid, usize> = HashMap::with_capacity(edges.len());
    let mut visits: Vec<Uuid> = Vec::new();
    let mut vertex = |v: Uuid, visits: &mut Vec<Uuid>| {
        *index.entry(v).or_insert_with(|| {
            visits.push(v);
            visits.len() - 1
        })
    };
    let ends: Vec<(usize, usize)> = edges.iter().map(|e| (vertex(e.visit, &mut visits), vertex(e.con_visit, &mut visits))).collect();
    let mut sets = UnionFind { parent: (0..visits.len()).collect() };
    for &(a, b) in &ends {
        sets.union(a, b);
    }
    // Per component: the oldest stored id, its first assignment time, and the smallest visit id.
    struct Component {
        group: Option<i64>,
        smallest: Uuid,
    }
    let mut by_root: HashMap<usize, Component> = HashMap::new();
    for (e, &(a, _)) in edges.iter().zip(&ends) {
        let root = sets.find(a);
        let c = by_root.entry(root).or_insert(Component { group: None, smallest: e.visit });
        c.smallest = c.smallest.min(e.visit).min(e.con_visit);
        if let Some(g) = e.group {
            c.group = Some(c.group.map_or(g, |old| old.min(g)));
        }
    }
    let mut first_created: HashMap<i64, NaiveDateTime> = created_elsewhere.clone();
    for e in edges {
        if let (Some(g), Some(t)) = (e.group, e.group_created) {
            first_created.entry(g).and_modify(|old| *old = (*old).min(t)).or_insert(t);
        }
    }
    // New ids: max + dense rank by the smallest visit id (text order = [SF]'s label order).
    let mut fresh: Vec<(String, usize)> =
        by_root.iter().filter(|(_, c)| c.group.is_none()).map(|(root, c)| (c.smallest.to_string(), *root)).collect();
    fresh.sort();
    let new_ids: HashMap<usize, i64> = fresh.iter().enumerate().map(|(i, (_, root))| (*root, top + 1 + i as i64)).collect();

    let mut out = Vec::new();
    for (e, &(a, _)) in edges.iter().zip(&ends) {
        let root = sets.find(a);
        let (group, created) = match by_root[&root].group {
            Some(g) => (g, first_created.get(&g).copied()),
            None => (new_ids[&root], None),
        };
        let unchanged = e.group == Some(group) && created.is_some() && e.group_created == created;
        if !unchanged {
            out.push(Assignment { id: e.id, group, created });
        }
    }
    out
}

/// Above this many rows waiting for a group id (a first run, a full run
/// after a large change) [`assign`] reads every stored row once instead of
/// walking the touched components from them.
pub const CLOSURE_MAX_PENDING: i64 = 50_000;

/// The rows grouping reads: those with a `CONFLICTID` and both visit ids.
const EDGE_ROWS: &str = "\"CONFLICTID\" IS NOT NULL AND \"VisitID\" IS NOT NULL AND \"ConVisitID\" IS NOT NULL";

/// Compute the groups of the components the night touched (module docs)
/// and write the changed `GroupID`/`G_CRDATEUNIQUE` (`now` is an SQL
/// expression of the run's wall clock). Returns the number of rows written.
///
/// Errors: PostgreSQL errors as classified by [`from_postgres`].
pub async fn assign(tx: &Transaction<'_>, schemas: &Schemas, now: &str) -> Result<u64> {
    let cvm = qualified(&schemas.conflict, "conflictvisitmaps");
    let changes = compute(tx, &cvm, EDGE_ROWS, Vec::new()).await?;
    update_stored(tx, &cvm, &changes, now).await
}

/// The temporary table of the groups of the rows the night's inserts will
/// write (`"VisitID"`, `"ConVisitID"`, `group_id`, `created`: `NULL` for a
/// new id, i.e. now), filled by [`plan_new_rows`], read by the inserts.
pub const NEW_ROW_GROUPS: &str = "pg_temp.thaw_conflict_new_groups";

/// Group the rows the night's inserts will write before they are written,
/// so each is inserted once with its final `GroupID` (docs/conflicts.md
/// §7.6, §14). `new_rows`: a query of their `("VisitID", "ConVisitID")`
/// (each will get a `CONFLICTID`); `pending_ids`: an SQL condition on a
/// stored row (alias-free) that is true when it gets a `CONFLICTID` from
/// the night's id map although it has none yet. Their groups go into
/// [`NEW_ROW_GROUPS`]; stored rows whose group changes (merges) are updated
/// at once. Returns the stored rows written.
///
/// Errors: PostgreSQL errors as classified by [`from_postgres`].
pub async fn plan_new_rows(tx: &Transaction<'_>, schemas: &Schemas, now: &str, new_rows: &str, pending_ids: &str) -> Result<u64> {
    let cvm = qualified(&schemas.conflict, "conflictvisitmaps");
    let rows = tx.query(new_rows, &[]).await.map_err(|e| from_postgres(e, "reading the night's new rows for GroupID"))?;
    let mut keys: Vec<(Uuid, Uuid)> = Vec::with_capacity(rows.len());
    let mut extra = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let (visit, con_visit): (Uuid, Uuid) = (
            row.try_get(0).map_err(|e| from_postgres(e, "decoding VisitID for GroupID"))?,
            row.try_get(1).map_err(|e| from_postgres(e, "decoding ConVisitID for GroupID"))?,
        );
        keys.push((visit, con_visit));
        // New rows have no ID yet: negative stand-ins, -1 for the first.
        extra.push(Edge { id: -1 - i as i64, visit, con_visit, group: None, group_created: None });
    }
    drop(rows);
    let edge_rows = format!("\"VisitID\" IS NOT NULL AND \"ConVisitID\" IS NOT NULL AND (\"CONFLICTID\" IS NOT NULL OR {pending_ids})");
    let changes = compute(tx, &cvm, &edge_rows, extra).await?;
    let (new, stored): (Vec<Assignment>, Vec<Assignment>) = changes.into_iter().partition(|a| a.id < 0);
    tx.batch_execute("CREATE TEMP TABLE thaw_conflict_new_groups (\"VisitID\" uuid, \"ConVisitID\" uuid, group_id int8, created timestamp) ON COMMIT DROP")
    .await
    .map_err(|e| from_postgres(e, "creating the new rows' GroupID table"))?;
    if !new.is_empty() {
        let sink = tx
            .copy_in(&format!("COPY {NEW_ROW_GROUPS} FROM STDIN (FORMAT binary)"))
            .await
            .map_err(|e| from_postgres(e, "starting COPY of the new rows' group ids"))?;
        let writer = BinaryCopyInWriter::new(sink, &[Type::UUID, Type::UUID, Type::INT8, Type::TIMESTAMP]);
        pin_mut!(writer);
        for a in &new {
            let (visit, con_visit) = &keys[(-1 - a.id) as usize];
            writer.as_mut().write(&[visit, con_visit, &a.group, &a.created]).await.map_err(|e| from_postgres(e, "writing the new rows' group ids"))?;
        }
        writer.finish().await.map_err(|e| from_postgres(e, "finishing COPY of the new rows' group ids"))?;
    }
    tx.batch_execute(&format!("CREATE UNIQUE INDEX ON {NEW_ROW_GROUPS} (\"VisitID\", \"ConVisitID\");\nANALYZE {NEW_ROW_GROUPS}"))
        .await
        .map_err(|e| from_postgres(e, "indexing the new rows' group ids"))?;
    update_stored(tx, &cvm, &stored, now).await
}

/// The changed groups of the components touched by the stored rows waiting
/// for a group id and by `extra` (rows not stored yet, negative ids).
/// `edge_rows`: the condition of a stored row that is an edge.
async fn compute(tx: &Transaction<'_>, cvm: &str, edge_rows: &str, extra: Vec<Edge>) -> Result<Vec<Assignment>> {
    let columns = "\"ID\", \"VisitID\", \"ConVisitID\", \"GroupID\", \"G_CRDATEUNIQUE\"";
    // The rows waiting for a group id (partial index idx_cvm_groupid_pending, V20).
    let pending_sql = format!("SELECT {columns} FROM {cvm} WHERE ({PENDING}) AND {edge_rows}");
    let mut pending = read_edges(tx, &pending_sql, &[]).await?;
    pending.extend(extra.iter().cloned());
    if pending.is_empty() {
        return Ok(Vec::new());
    }
    if pending.len() as i64 > CLOSURE_MAX_PENDING {
        let mut edges = read_edges(tx, &format!("SELECT {columns} FROM {cvm} WHERE {edge_rows}"), &[]).await?;
        edges.extend(extra);
        return Ok(components(&edges));
    }
    // Walk the components from the pending rows' visits.
    let mut rows: HashMap<i64, Edge> = HashMap::new();
    let mut seen: std::collections::HashSet<Uuid> = std::collections::HashSet::new();
    let mut frontier: Vec<Uuid> = Vec::new();
    let step_sql = format!("SELECT {columns} FROM {cvm} WHERE (\"VisitID\" = ANY($1) OR \"ConVisitID\" = ANY($1)) AND {edge_rows}");
    let mut found = pending;
    loop {
        for e in found {
            for v in [e.visit, e.con_visit] {
                if seen.insert(v) {
                    frontier.push(v);
                }
            }
            rows.insert(e.id, e);
        }
        if frontier.is_empty() {
            break;
        }
        let step = std::mem::take(&mut frontier);
        found = read_edges(tx, &step_sql, &[&step]).await?.into_iter().filter(|e| !rows.contains_key(&e.id)).collect();
    }
    let edges: Vec<Edge> = rows.into_values().collect();
    let top: i64 = tx
        .query_one(&format!("SELECT coalesce(max(\"GroupID\"), 0)::int8 FROM {cvm} WHERE {edge_rows}"), &[])
        .await
        .map_err(|e| from_postgres(e, "reading the largest GroupID"))?
        .get(0);
    // The first assignment of each id also counts rows outside these components (a split group's other part).
    let ids: Vec<i64> = edges.iter().filter_map(|e| e.group).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    let created: HashMap<i64, NaiveDateTime> = tx
        .query(
            &format!(
                "SELECT \"GroupID\"::int8, min(\"G_CRDATEUNIQUE\") FROM {cvm} WHERE \"GroupID\" = ANY($1) AND {edge_rows} \
                 AND \"G_CRDATEUNIQUE\" IS NOT NULL GROUP BY 1"
            ),
            &[&ids],
        )
        .await
        .map_err(|e| from_postgres(e, "reading the first assignment of the touched group ids"))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    Ok(components_within(&edges, top, &created))
}

/// Write `changes` (stored rows, by `ID`) with one joined `UPDATE`; returns the rows written.
async fn update_stored(tx: &Transaction<'_>, cvm: &str, changes: &[Assignment], now: &str) -> Result<u64> {
    if changes.is_empty() {
        return Ok(0);
    }
    tx.batch_execute(
        "CREATE TEMP TABLE IF NOT EXISTS thaw_conflict_groups (id int8 PRIMARY KEY, group_id int8, created timestamp) ON COMMIT DROP;\n\
         TRUNCATE pg_temp.thaw_conflict_groups",
    )
    .await
    .map_err(|e| from_postgres(e, "creating the GroupID staging table"))?;
    let sink = tx
        .copy_in("COPY pg_temp.thaw_conflict_groups FROM STDIN (FORMAT binary)")
        .await
        .map_err(|e| from_postgres(e, "starting COPY of group ids"))?;
    let writer = BinaryCopyInWriter::new(sink, &[Type::INT8, Type::INT8, Type::TIMESTAMP]);
    pin_mut!(writer);
    for a in changes {
        writer.as_mut().write(&[&a.id, &a.group, &a.created]).await.map_err(|e| from_postgres(e, "writing group ids"))?;
    }
    writer.finish().await.map_err(|e| from_postgres(e, "finishing COPY of group ids"))?;
    let cols = written_columns(Table::ConflictVisitMaps, ["GroupID", "G_CRDATEUNIQUE"])?;
    let update = format!(
        "ANALYZE pg_temp.thaw_conflict_groups;\n\
         UPDATE {cvm} c SET {g} = t.group_id, {created} = coalesce(t.created, {now}) FROM pg_temp.thaw_conflict_groups t WHERE c.\"ID\" = t.id",
        g = cols[0],
        created = cols[1],
    );
    tx.batch_execute(&update).await.map_err(|e| from_postgres(e, "writing GroupID"))?;
    Ok(changes.len() as u64)
}

/// The predicate of the rows waiting for a group id (the partial index's, V20).
const PENDING: &str = "\"GroupID\" IS NULL OR \"G_CRDATEUNIQUE\" IS NULL";

/// Run `sql` (selecting `ID`, `VisitID`, `ConVisitID`, `GroupID`,
/// `G_CRDATEUNIQUE`) and decode its rows.
async fn read_edges(tx: &Transaction<'_>, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Edge>> {
    let rows = tx.query_raw(sql, params.iter().copied()).await.map_err(|e| from_postgres(e, "reading the pairs for GroupID"))?;
    pin_mut!(rows);
    let mut edges = Vec::new();
    while let Some(row) = rows.try_next().await.map_err(|e| from_postgres(e, "reading the pairs for GroupID"))? {
        edges.push(Edge {
            id: row.try_get(0).map_err(|e| from_postgres(e, "decoding ID for GroupID"))?,
            visit: row.try_get(1).map_err(|e| from_postgres(e, "decoding VisitID for GroupID"))?,
            con_visit: row.try_get(2).map_err(|e| from_postgres(e, "decoding ConVisitID for GroupID"))?,
            group: row.try_get(3).map_err(|e| from_postgres(e, "decoding GroupID"))?,
            group_created: row.try_get(4).map_err(|e| from_postgres(e, "decoding G_CRDATEUNIQUE"))?,
        });
    }
    Ok(edges)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn edge(id: i64, a: u128, b: u128, group: Option<i64>) -> Edge {
        let t = group.map(|g| chrono::NaiveDate::from_ymd_opt(2025, 1, g as u32).unwrap().and_hms_opt(0, 0, 0).unwrap());
        Edge { id, visit: v(a), con_visit: v(b), group, group_created: t }
    }

    fn groups(edges: &[Edge]) -> HashMap<i64, i64> {
        let mut out: HashMap<i64, i64> = edges.iter().filter_map(|e| e.group.map(|g| (e.id, g))).collect();
        for a in components(edges) {
            out.insert(a.id, a.group);
        }
        out
    }

    #[test]
    fn chains_longer_than_three_links_are_one_group() {
        // 1-2, 2-3, 3-4, 4-5, 5-6 (both orientations): one component; 7-8 another.
        let mut edges = Vec::new();
        for (i, (a, b)) in [(1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (7, 8)].into_iter().enumerate() {
            edges.push(edge(2 * i as i64, a, b, None));
            edges.push(edge(2 * i as i64 + 1, b, a, None));
        }
        let g = groups(&edges);
        assert!((0..10).all(|id| g[&id] == 1), "{g:?}");
        assert_eq!((g[&10], g[&11]), (2, 2));
        assert!(components(&edges).iter().all(|a| a.created.is_none()));
    }

    #[test]
    fn a_growing_group_keeps_its_id_and_merging_groups_keep_the_oldest() {
        let mut edges = vec![edge(1, 1, 2, Some(5)), edge(2, 2, 1, Some(5)), edge(3, 3, 4, Some(3)), edge(4, 9, 10, Some(7))];
        // A new pair 2-11 joins group 5; nothing else changes.
        edges.push(edge(5, 2, 11, None));
        let changes = components(&edges);
        assert_eq!(changes.len(), 1);
        assert_eq!((changes[0].id, changes[0].group), (5, 5));
        assert_eq!(changes[0].created, edges[0].group_created, "G_CRDATEUNIQUE of the group, not now");
        // A pair 11-3 merges groups 5 and 3: every row gets 3 (the older id) and 3's G_CRDATEUNIQUE.
        edges.push(edge(6, 11, 3, None));
        let g = groups(&edges);
        for id in [1, 2, 3, 5, 6] {
            assert_eq!(g[&id], 3, "row {id}: {g:?}");
        }
        assert_eq!(g[&4], 7);
        let merged = components(&edges);
        assert!(merged.iter().all(|a| a.created == edges[2].group_created), "{merged:?}");
        // A new component gets max + 1.
        edges.push(edge(7, 20, 21, None));
        assert_eq!(groups(&edges)[&7], 8);
    }

    #[test]
    fn a_split_group_keeps_its_id_in_every_part_and_a_walk_gives_the_whole_graphs_ids() {
        // Group 4 was 1-2-3; the application deleted the rows 2-3, so {1,2} and {3,5} are two parts.
        let mut edges = vec![edge(1, 1, 2, Some(4)), edge(2, 2, 1, Some(4)), edge(3, 3, 5, Some(4)), edge(4, 5, 3, Some(4))];
        // A new row 5-6 touches the part {3,5,6}: walked alone, it keeps id 4 and the earliest
        // G_CRDATEUNIQUE of id 4 anywhere, as the whole graph gives.
        edges.push(edge(5, 5, 6, None));
        let whole = components(&edges);
        let part: Vec<Edge> = edges[2..].to_vec();
        let created: HashMap<i64, NaiveDateTime> = [(4, edges[2].group_created.unwrap())].into();
        let walked = components_within(&part, 9, &created);
        assert_eq!(walked, whole);
        assert_eq!((walked[0].id, walked[0].group, walked[0].created), (5, 4, edges[2].group_created));
        // The other part {1,2} is not rewritten by either.
        assert!(whole.iter().all(|a| a.id == 5), "{whole:?}");
        // A new component counts on from the largest id stored anywhere, not in the walked rows.
        assert_eq!(components_within(&[edge(7, 20, 21, None)], 9, &HashMap::new())[0].group, 10);
    }

    #[test]
    fn nothing_changes_when_groups_are_stored() {
        let edges = vec![edge(1, 1, 2, Some(1)), edge(2, 2, 1, Some(1))];
        assert!(components(&edges).is_empty());
    }
}
