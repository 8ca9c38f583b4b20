//! The status lifecycle of the nightly run (docs/conflicts.md §8.2), in
//! \[SF\]'s order, after the refresh and insert of [`super::store`]:
//! not detected again → `R` (step 4), deleted visits → `D` (step 1,
//! terminal), missed visits → `R` (steps 2–3), resolved conflicts with an
//! open pair reopen (step 5), cascades down (a closed conflict pulls its last
//! open pairs) and up (all pairs closed → conflict `R`) between `conflicts`
//! and `conflictvisitmaps` (steps 6–7), no-response `N` from the
//! application's `NoResponseFlag` / `ConNoResponseFlag` (step 8), and no
//! `ResolveDate` / `ResolvedBy` on open rows (step 9). A deleted
//! conflicting visit names who resolved the pair (`ResolvedBy` = the
//! conflicting agency's contact, else its name); `UpdatedRFlag` marks the
//! conflicts with a pair in the window and is cleared on the ones step 5
//! reopens. The night's new pairs are left out of that pass, which \[SF\]
//! runs before its inserts. Then, as \[SF\] TASK_05 does without the window,
//! steps 2-3 and 5-9 run again over the stored pairs outside the window and
//! every pair of a conflict that got a new pair tonight, with its variant
//! of the missed test (docs/conflicts.md §D17). A conflict that the literal
//! order writes and writes back the same night (resolved by step 2 and
//! reopened by step 5, or reopened by step 5 and set `N` again by step 8) is
//! written with its net result only (docs/conflicts.md §D19).
//!
//! Set-based statements over the stored pairs only (no source reads except
//! the deleted-visits table), each skipping the rows it would not change.
//! Every written column passes [`written_columns`], the nightly allow-list.

use chrono::NaiveDate;
use tokio_postgres::Transaction;

use super::columns::Want;
use super::in_service;
use super::store::{written_columns, Schemas, StatementContext, Table, CONFLICT_IDS, STAGING};
use crate::contract::StatusChanges;
use crate::error::{from_postgres, Result};
use crate::sink::qualified;

/// Names of the statements of [`statements`] besides the two passes of
/// steps 2-3 and 5-9 that take the window (`$1`, `$2`: first and last
/// `VisitDate` of docs/conflicts.md §4.1.1, bound by
/// [`super::store::apply`]); the deleted-visit statements take no parameters.
pub const WINDOWED: &[&str] = &["resolve", "resolve event rows", "no response withdrawn pairs"];

/// Whether the statement `name` of [`statements`] takes the window parameters.
pub fn takes_window(name: &str) -> bool {
    WINDOWED.contains(&name) || Scope::INSIDE_WINDOW.names.contains(&name) || Scope::OUTSIDE_WINDOW.names.contains(&name)
}

/// The lifecycle statements in execution order (docs/conflicts.md §8.2),
/// with a name each; [`takes_window`] tells which take the window.
///
/// Errors: [`crate::error::ErrorKind::Internal`] when a statement would
/// write a column outside the allow-list (a bug in thaw);
/// [`crate::error::ErrorKind::SchemaMismatch`] from the source column types.
pub fn statements(ctx: &StatementContext) -> Result<Vec<(&'static str, String)>> {
    let cvm = qualified(&ctx.schemas.conflict, "conflictvisitmaps");
    let conflicts = qualified(&ctx.schemas.conflict, "conflicts");
    let now = format!("(now() AT TIME ZONE {})", ctx.zone_literal);
    // 7. Resolve stored open pairs of the window that were not detected ($1/$2: window),
    //    including pairs that are now cross-state (docs/conflicts.md §D6: resolved, never deleted).
    // The change history records the system reason of the cross-state ones (docs/conflicts.md §9.2).
    let resolve_cols = written_columns(
        Table::ConflictVisitMaps,
        ["StatusFlag", "ResolveDate", "UpdatedDate"],
    )?;
    let resolve_sql = format!(
        "UPDATE {cvm} c SET {s} = 'R', {r} = {now}, {u} = {now}\n\
         WHERE c.\"VisitDate\" BETWEEN $1 AND $2 AND c.\"CONFLICTID\" IS NOT NULL AND coalesce(c.\"StatusFlag\", 'U') NOT IN ('R', 'D')\n  \
         AND c.\"InserviceStartDate\" IS NULL AND c.\"InserviceEndDate\" IS NULL AND c.\"ConInserviceStartDate\" IS NULL AND c.\"ConInserviceEndDate\" IS NULL\n  \
         AND c.\"PTOStartDate\" IS NULL AND c.\"PTOEndDate\" IS NULL AND c.\"ConPTOStartDate\" IS NULL AND c.\"ConPTOEndDate\" IS NULL\n  \
         AND NOT EXISTS (SELECT 1 FROM {STAGING} p WHERE p.\"VisitID\" = c.\"VisitID\" AND p.\"ConVisitID\" = c.\"ConVisitID\"){scope}",
        scope = if ctx.keyed {
            format!("\n  AND EXISTS (SELECT 1 FROM {} k WHERE k.ssn = c.\"SSN\" AND k.visit_date = c.\"VisitDate\")", super::incremental::KEYS)
        } else {
            String::new()
        },
        s = resolve_cols[0],
        r = resolve_cols[1],
        u = resolve_cols[2],
    );
    // 7b. Resolve stored in-service/PTO rows of the window that were not detected again
    //    ([SF] marks them with UpdateFlag like every row of the window, docs/conflicts.md §8.2 step 4).
    let resolve_events_sql = format!(
        "UPDATE {cvm} c SET {s} = 'R', {r} = {now}, {u} = {now}\n\
         WHERE c.\"VisitDate\" BETWEEN $1 AND $2 AND c.\"CONFLICTID\" IS NOT NULL AND coalesce(c.\"StatusFlag\", 'U') NOT IN ('R', 'D')\n  \
         AND {event_row}\n  \
         AND NOT EXISTS (SELECT 1 FROM {new} n WHERE n.\"VisitID\" = c.\"VisitID\" AND n.\"ConVisitID\" = c.\"ConVisitID\"){scope}",
        event_row = in_service::is_event_row("c"),
        new = in_service::EVENT_NEW,
        scope = if ctx.keyed { format!("\n  AND {}", in_service::resolve_scope("c")) } else { String::new() },
        s = resolve_cols[0],
        r = resolve_cols[1],
        u = resolve_cols[2],
    );
    // 8. The status lifecycle after the refresh, in [SF]'s nightly order
    //    (docs/conflicts.md §8.2 steps 1-3, 5-7, 9; step 4 is `resolve_sql`).
    //    `$1`/`$2` = the window. D is terminal; statements skip rows they would not change.
    let pair_life = written_columns(
        Table::ConflictVisitMaps,
        ["StatusFlag", "ResolveDate", "UpdatedDate", "ResolvedBy"],
    )?;
    let (ps, pr, pu, pb) = (&pair_life[0], &pair_life[1], &pair_life[2], &pair_life[3]);
    let conflict_life = written_columns(
        Table::Conflicts,
        ["StatusFlag", "ResolveDate", "ResolvedBy", "UpdatedRFlag"],
    )?;
    let (ks, kr, kb, kf) = (
        &conflict_life[0],
        &conflict_life[1],
        &conflict_life[2],
        &conflict_life[3],
    );
    let deleted_ids = deleted_visit_ids(ctx)?;
    // Step 1: the conflicting visit was deleted → pair D, resolved by the
    // conflicting agency's contact, else its name; the primary visit was deleted → its conflict D.
    let deleted_pairs_sql = format!(
        "UPDATE {cvm} c SET {ps} = 'D', {pr} = coalesce(c.\"ResolveDate\", {now}), {pu} = {now},\n\
           {pb} = coalesce(nullif(c.\"ConAgencyContact\", ''), c.\"ConProviderName\")\n\
         WHERE c.\"StatusFlag\" IS DISTINCT FROM 'D' AND c.\"ConVisitID\" IN {deleted_ids}"
    );
    let deleted_conflicts_sql = format!(
        "UPDATE {conflicts} k SET {ks} = 'D', {kr} = coalesce(k.\"ResolveDate\", {now})\n\
         WHERE k.\"StatusFlag\" IS DISTINCT FROM 'D' AND k.\"CONFLICTID\" IN (\n\
           SELECT c.\"CONFLICTID\" FROM {cvm} c WHERE c.\"VisitID\" IN {deleted_ids})"
    );
    let cols = LifecycleColumns { now: &now, cvm: &cvm, conflicts: &conflicts, ps, pr, pu, pb, ks, kr, kb, kf };
    let inside = later_steps(&cols, &Scope::INSIDE_WINDOW);
    let outside = later_steps(&cols, &Scope::OUTSIDE_WINDOW);
    let in_window = Scope::INSIDE_WINDOW.pairs;
    // [SF]'s refresh sets every detected pair but W/I to U, and step 8 sets it back to N
    // while ConNoResponseFlag is 'Yes': so an N pair of the window still open after step 4
    // whose flag was withdrawn by the application is U again.
    let no_response_withdrawn_sql = format!(
        "UPDATE {cvm} c SET {ps} = 'U', {pu} = {now}\n\
         WHERE {in_window} AND c.\"StatusFlag\" = 'N' AND c.\"ConNoResponseFlag\" IS DISTINCT FROM 'Yes'"
    );
    let mut out = vec![
        ("cascaded pairs table", format!("CREATE TEMP TABLE IF NOT EXISTS {} (id int8) ON COMMIT DROP", CASCADED.trim_start_matches("pg_temp."))),
        ("deleted pairs", deleted_pairs_sql),
        ("deleted conflicts", deleted_conflicts_sql),
    ];
    let mut inside = inside.into_iter();
    // Step 3, then 4 and the withdrawn no-response pairs, then step 2 and the rest:
    // step 2 writes only conflicts, which steps 3 and 4 do not read, so it
    // runs right before step 5 and sees the pairs step 5 sees (docs/conflicts.md §D19).
    out.extend(inside.by_ref().take(1));
    out.extend([
        ("resolve", resolve_sql),
        ("resolve event rows", resolve_events_sql),
        ("no response withdrawn pairs", no_response_withdrawn_sql),
    ]);
    out.extend(inside);
    out.extend(outside);
    Ok(out)
}

/// The deleted visit ids as an SQL subquery, `(SELECT … FROM
/// factvisitcallperformance_deleted_cr d)`: the whole table, no time filter
/// (\[SF\] step 1 of docs/conflicts.md §8.2), ids as `uuid` whatever the
/// column type (docs/conflicts.md §2.4).
///
/// Errors: [`crate::error::ErrorKind::SchemaMismatch`] from the source column types.
pub fn deleted_visit_ids(ctx: &StatementContext) -> Result<String> {
    let deleted = qualified(&ctx.schemas.analytics, "factvisitcallperformance_deleted_cr");
    let id = ctx.source.expr("d", "factvisitcallperformance_deleted_cr", "Visit Id", Want::Uuid)?;
    Ok(format!("(SELECT {id} FROM {deleted} d)"))
}

/// The written column names (quoted by the allow-list) and tables the
/// steps 2-3 and 5-9 use.
struct LifecycleColumns<'a> {
    now: &'a str,
    cvm: &'a str,
    conflicts: &'a str,
    ps: &'a str,
    pr: &'a str,
    pu: &'a str,
    pb: &'a str,
    ks: &'a str,
    kr: &'a str,
    kb: &'a str,
    kf: &'a str,
}

/// Which stored rows one pass of steps 2-3 and 5-9 covers
/// (docs/conflicts.md §8.2, §D17).
struct Scope {
    /// The statement names, in the order of [`later_steps`] (the second
    /// pass's `UpdatedRFlag` statement, [`MARK_EVERY_CONFLICT`], is named
    /// apart: it takes no window).
    names: [&'static str; 9],
    /// Predicate on a pair `c`: the pair is in this pass.
    pairs: &'static str,
    /// Predicate on a pair `c` of this pass: the pair is open as step 5
    /// sees it (a conflict with one reopens; step 2 leaves it out).
    open_pairs: &'static str,
    /// Predicate on a pair `c` of this pass whose conflict step 2 resolves.
    missed_conflicts: &'static str,
    /// Predicate on a pair `c` of this pass that step 3 resolves.
    missed_pairs: &'static str,
    /// Predicate on the pair counts `s` of a conflict (not `R`/`D`) that
    /// step 7 resolves besides the single closed pair.
    all_closed: &'static str,
    /// How the pass treats the night's new pairs (docs/conflicts.md §D17).
    new_pairs: NewPairs,
}

/// \[SF\] runs TASK_02_3 (the pass of the window) before the night's inserts
/// and TASK_05's pass after them; thaw runs both after the inserts, so the
/// first pass leaves the new pairs out and the second takes every pair of
/// a conflict that got a new pair tonight (docs/conflicts.md §D17).
#[derive(Clone, Copy)]
enum NewPairs {
    /// Not in the pass: pairs created tonight (`CreatedDate` = the night's now).
    Excluded,
    /// Also in the pass: every pair of a conflict with a new pair tonight ([`CONFLICT_IDS`]).
    TheirConflicts,
}

impl Scope {
    /// \[SF\] TASK_02_3: the pairs of the window, missed = either visit, a
    /// conflict is resolved when its pairs in the window are all closed.
    const INSIDE_WINDOW: Scope = Scope {
        names: [
            "missed pairs",
            "missed conflicts",
            "reopen conflicts",
            "cascade down",
            "cascade up",
            "no response conflicts",
            "no response pairs",
            "clear ResolveDate of open pairs",
            "clear ResolveDate of open conflicts",
        ],
        pairs: "c.\"VisitDate\" BETWEEN $1 AND $2",
        // [SF]'s refresh has set every pair of the window it detected again
        // to U (but W/I) before TASK_02_3, and only step 8 sets N again: an N
        // pair still open after steps 1, 3 and 4 was detected again, so it is
        // U when step 5 looks (docs/conflicts.md §8.2 step 5).
        open_pairs: "c.\"StatusFlag\" IN ('U', 'N')",
        missed_conflicts: "(c.\"IsMissed\" OR c.\"ConIsMissed\")",
        missed_pairs: "(c.\"IsMissed\" OR c.\"ConIsMissed\")",
        all_closed: "s.n_scope > 0 AND s.n_scope = s.closed_scope",
        new_pairs: NewPairs::Excluded,
    };

    /// \[SF\] TASK_05's pass without the window, run by thaw on the pairs
    /// outside the window and on every pair of a conflict that got a new pair
    /// tonight (elsewhere inside the window it would repeat the first pass,
    /// docs/conflicts.md §D17): conflicts resolved by a missed
    /// primary visit only (`IsMissed`), pairs by a missed conflicting visit
    /// only (`ConIsMissed`), a conflict is resolved when all its pairs are
    /// closed. A NULL `VisitDate` is outside the window.
    const OUTSIDE_WINDOW: Scope = Scope {
        names: [
            "outside the window: missed pairs",
            "outside the window: missed conflicts",
            "outside the window: reopen conflicts",
            "outside the window: cascade down",
            "outside the window: cascade up",
            "outside the window: no response conflicts",
            "outside the window: no response pairs",
            "outside the window: clear ResolveDate of open pairs",
            "outside the window: clear ResolveDate of open conflicts",
        ],
        pairs: "coalesce(c.\"VisitDate\" NOT BETWEEN $1 AND $2, TRUE)",
        // TASK_05 runs after TASK_02_3's step 8: an N pair is N.
        open_pairs: "c.\"StatusFlag\" = 'U'",
        missed_conflicts: "c.\"IsMissed\"",
        missed_pairs: "c.\"ConIsMissed\"",
        all_closed: "s.n_scope > 0 AND s.n = s.closed",
        new_pairs: NewPairs::TheirConflicts,
    };
}

/// Steps 2-3 and 5-9 of docs/conflicts.md §8.2 over the pairs of `scope`
/// (both take the window as `$1`, `$2`), named by `scope.names`: missed
/// pairs, missed conflicts, mark, reopen, cascade down, cascade up, no
/// response conflicts and pairs, clear the resolution of open pairs and
/// conflicts.
///
/// Steps 2, 5 and 8 write the net result of \[SF\]'s literal order
/// (docs/conflicts.md §D19): a conflict that step 2 would set `R` and step 5
/// reopen is reopened without being resolved first, and an `N` conflict that
/// step 5 would reopen and step 8 set `N` again is left `N`, so a night
/// without source changes rewrites no conflict. Every end state
/// (status, `ResolveDate`, `ResolvedBy`, `UpdatedRFlag`) is the literal
/// order's.
fn later_steps(cols: &LifecycleColumns, scope: &Scope) -> Vec<(&'static str, String)> {
    let LifecycleColumns { now, cvm, conflicts, ps, pr, pu, pb, ks, kr, kb, kf } = cols;
    let Scope { names, pairs, open_pairs, missed_conflicts, missed_pairs, all_closed, new_pairs } = scope;
    let in_scope = &match new_pairs {
        NewPairs::Excluded => format!("({pairs} AND c.\"CreatedDate\" IS DISTINCT FROM {now})"),
        NewPairs::TheirConflicts => format!("({pairs} OR c.\"CONFLICTID\" IN (SELECT conflict_id FROM {CONFLICT_IDS}))"),
    };
    // Steps 2 and 3: a missed visit (three-valued) resolves its conflicts and pairs.
    // Step 2 runs after step 3 (and, in the window, after step 4), right before
    // step 5, and leaves out the conflicts with an open pair in scope: step 5
    // would reopen them at once, `reopens` below reopens them instead (§D19).
    let open_pair_in_scope = format!("SELECT c.\"CONFLICTID\" FROM {cvm} c WHERE {in_scope} AND {open_pairs}");
    let missed_pair_in_scope = format!("SELECT c.\"CONFLICTID\" FROM {cvm} c WHERE {in_scope} AND {missed_conflicts}");
    let missed_conflicts_sql = format!(
        "UPDATE {conflicts} k SET {ks} = 'R', {kr} = coalesce(k.\"ResolveDate\", {now})\n\
         WHERE k.\"StatusFlag\" NOT IN ('R', 'D') AND k.\"CONFLICTID\" IN ({missed_pair_in_scope})\n  \
           AND NOT EXISTS ({open_pair_in_scope} AND c.\"CONFLICTID\" = k.\"CONFLICTID\")"
    );
    let missed_pairs_sql = format!(
        "UPDATE {cvm} c SET {ps} = 'R', {pr} = coalesce(c.\"ResolveDate\", {now}), {pu} = {now}\n\
         WHERE {in_scope} AND c.\"StatusFlag\" NOT IN ('R', 'D') AND {missed_pairs}"
    );
    // Step 5: UpdatedRFlag '1' on every conflict with a pair in scope; a conflict
    // with an open pair in scope (`open_pairs`: U, and in the window also N)
    // whose status is not D/I/W/U (R, N) reopens to U with UpdatedRFlag NULL.
    // `reopens` also takes the conflicts step 2 left out (not R/D, a missed pair in scope): [SF] sets them R and step 5
    // reopens them. Three-valued like [SF]'s two statements: a NULL status
    // neither resolves nor reopens.
    let reopens = format!(
        "coalesce(k.\"CONFLICTID\" IN ({open_pair_in_scope})\n    \
           AND (k.\"StatusFlag\" NOT IN ('D', 'I', 'W', 'U') OR (k.\"StatusFlag\" NOT IN ('R', 'D') AND k.\"CONFLICTID\" IN ({missed_pair_in_scope}))), FALSE)"
    );
    // [SF]'s step 5 sets `UpdatedRFlag` '1' on every conflict with a pair in
    // scope and NULL on those it reopens. TASK_05's pass, the night's last,
    // covers every conflict (no window), so the flag each conflict keeps is
    // the one that pass gives: it is written once, by the second pass, on
    // every conflict, from all its pairs (docs/conflicts.md §D17, §D19). The
    // first pass reopens as [SF]'s does but leaves the flag to it (a
    // conflict it reopened is U when the second pass looks, which sets '1').
    let mark_sql = match new_pairs {
        NewPairs::Excluded => None,
        NewPairs::TheirConflicts => {
            let reopens_any = format!(
                "coalesce(k.\"CONFLICTID\" IN (SELECT c.\"CONFLICTID\" FROM {cvm} c WHERE {open_pairs})\n    \
                   AND (k.\"StatusFlag\" NOT IN ('D', 'I', 'W', 'U') OR (k.\"StatusFlag\" NOT IN ('R', 'D')\n    \
                   AND k.\"CONFLICTID\" IN (SELECT c.\"CONFLICTID\" FROM {cvm} c WHERE {missed_conflicts}))), FALSE)"
            );
            let flag = format!("CASE WHEN {reopens_any} THEN NULL ELSE '1' END");
            Some(format!(
                "UPDATE {conflicts} k SET {kf} = {flag}\n\
                 WHERE k.\"CONFLICTID\" IN (SELECT c.\"CONFLICTID\" FROM {cvm} c)\n  \
                   AND k.\"UpdatedRFlag\" IS DISTINCT FROM {flag}"
            ))
        }
    };
    // An N conflict whose NoResponseFlag is still 'Yes' is left N: step 5 would
    // reopen it and step 8 set it N again (steps 6 and 7 change neither an open
    // conflict nor its open pair). Any other reopened conflict becomes U.
    let reopen_conflicts_sql = format!(
        "UPDATE {conflicts} k SET {ks} = 'U'\n\
         WHERE {reopens} AND k.\"StatusFlag\" <> 'U'\n  \
           AND (k.\"StatusFlag\" <> 'N' OR k.\"NoResponseFlag\" IS DISTINCT FROM 'Yes')"
    );
    // Pair counts per conflict, over the conflicts `which` selects (a condition on a pair `c`).
    let counts_of = |which: &str| {
        format!(
            "SELECT c.\"CONFLICTID\", count(*) AS n, count(*) FILTER (WHERE c.\"StatusFlag\" IN ('R', 'D')) AS closed,\n\
                    count(*) FILTER (WHERE {in_scope}) AS n_scope,\n\
                    count(*) FILTER (WHERE {in_scope} AND c.\"StatusFlag\" IN ('R', 'D')) AS closed_scope\n\
             FROM {cvm} c WHERE {which} GROUP BY c.\"CONFLICTID\""
        )
    };
    let pair_counts = counts_of("c.\"CONFLICTID\" IS NOT NULL");
    // Step 6: cascade down: the pairs in scope of a resolved or deleted conflict → R
    // (D kept) when it has one pair, or when all or all but one of its pairs are R/D.
    let cascade_down_sql = format!(
        "UPDATE {cvm} c SET {ps} = 'R', {pr} = coalesce(c.\"ResolveDate\", {now}), {pu} = {now}\n\
         FROM {conflicts} k, ({pair_counts}) s\n\
         WHERE k.\"CONFLICTID\" = c.\"CONFLICTID\" AND s.\"CONFLICTID\" = c.\"CONFLICTID\" AND k.\"StatusFlag\" IN ('R', 'D')\n\
           AND {in_scope} AND c.\"StatusFlag\" NOT IN ('R', 'D') AND (s.n = 1 OR s.closed >= s.n - 1)"
    );
    // The closed pairs may still be detected: [SF]'s next night reopens
    // them, so they are kept off the closed-pairs list (docs/conflicts.md §D26).
    let cascade_down_sql =
        format!("WITH closed AS ({cascade_down_sql}\nRETURNING c.\"ID\")\nINSERT INTO {CASCADED} (id) SELECT \"ID\" FROM closed");
    // Step 7: cascade up: a conflict (not R/D) whose only pair is R/D, or whose pairs are all closed (`all_closed`) → R.
    // Both conditions need a closed pair, so only the conflicts with one are
    // counted (all their pairs), found through the partial index of closed
    // pairs (schema/V23__conflict_lifecycle_indexes.sql), not by grouping
    // every stored pair (docs/conflicts.md §14).
    let closed_pair_counts = counts_of(&format!(
        "c.\"CONFLICTID\" IN (SELECT x.\"CONFLICTID\" FROM {cvm} x WHERE x.\"StatusFlag\" IN ('R', 'D'))"
    ));
    let cascade_up_sql = format!(
        "UPDATE {conflicts} k SET {ks} = 'R', {kr} = coalesce(k.\"ResolveDate\", {now})\n\
         FROM ({closed_pair_counts}) s\n\
         WHERE s.\"CONFLICTID\" = k.\"CONFLICTID\" AND k.\"StatusFlag\" NOT IN ('R', 'D')\n\
           AND ((s.n = 1 AND s.closed = 1) OR ({all_closed}))"
    );
    // Step 8: no response: open conflicts (U/N/W/I) whose NoResponseFlag is 'Yes', and open
    // pairs whose ConNoResponseFlag is 'Yes', → N. Literal comparison: 'yes' or NULL is not 'Yes'.
    let no_response_conflicts_sql = format!(
        "UPDATE {conflicts} k SET {ks} = 'N'\n\
         WHERE k.\"StatusFlag\" IN ('U', 'W', 'I') AND k.\"NoResponseFlag\" = 'Yes'\n\
           AND k.\"CONFLICTID\" IN (SELECT c.\"CONFLICTID\" FROM {cvm} c WHERE {in_scope})"
    );
    let no_response_pairs_sql = format!(
        "UPDATE {cvm} c SET {ps} = 'N', {pu} = {now}\n\
         WHERE {in_scope} AND c.\"StatusFlag\" IN ('U', 'W', 'I') AND c.\"ConNoResponseFlag\" = 'Yes'"
    );
    // Step 9: open conflicts and pairs (U/N/W/I) in scope carry no ResolveDate and no ResolvedBy.
    let clear_pairs_sql = format!(
        "UPDATE {cvm} c SET {pr} = NULL, {pb} = NULL, {pu} = {now}\n\
         WHERE {in_scope} AND c.\"StatusFlag\" IN ('U', 'N', 'W', 'I') AND (c.\"ResolveDate\" IS NOT NULL OR c.\"ResolvedBy\" IS NOT NULL)"
    );
    let clear_conflicts_sql = format!(
        "UPDATE {conflicts} k SET {kr} = NULL, {kb} = NULL\n\
         WHERE k.\"StatusFlag\" IN ('U', 'N', 'W', 'I') AND (k.\"ResolveDate\" IS NOT NULL OR k.\"ResolvedBy\" IS NOT NULL)\n\
           AND k.\"CONFLICTID\" IN (SELECT c.\"CONFLICTID\" FROM {cvm} c WHERE {in_scope})"
    );
    let mut steps: Vec<(&'static str, String)> = names
        .iter()
        .copied()
        .zip([
            missed_pairs_sql,
            missed_conflicts_sql,
            reopen_conflicts_sql,
            cascade_down_sql,
            cascade_up_sql,
            no_response_conflicts_sql,
            no_response_pairs_sql,
            clear_pairs_sql,
            clear_conflicts_sql,
        ])
        .collect();
    if let Some(mark_sql) = mark_sql {
        // Step 5's flag, right before the step 5 reopening.
        steps.insert(2, (MARK_EVERY_CONFLICT, mark_sql));
    }
    steps
}

/// Name of the second pass's statement that writes `UpdatedRFlag` on every
/// conflict with a pair, as [SF]'s last pass (TASK_05's step 5) leaves it
/// (docs/conflicts.md §D17); it takes no window.
pub const MARK_EVERY_CONFLICT: &str = "outside the window: UpdatedRFlag of every conflict";

/// The pairs that step 6 (cascade down, either pass) closed tonight
/// (`id` = `conflictvisitmaps."ID"`), dropped at commit: they may still be
/// detected, so they stay off the closed-pairs list (docs/conflicts.md §D26).
pub const CASCADED: &str = "pg_temp.thaw_conflict_cascaded";

/// The conflicts' statuses before the night: `id` (`CONFLICTID`) and
/// `status` (`StatusFlag` as text) of every conflict with a pair in the window.
const CONFLICTS_BEFORE: &str = "pg_temp.thaw_conflict_status_before";

/// The names of the second-pass statements that set a status (counted in
/// [`crate::contract::StatusChanges::outside_window_status_writes`]).
pub const OUTSIDE_WINDOW_STATUS_STEPS: &[&str] = &[
    "outside the window: missed conflicts",
    "outside the window: missed pairs",
    "outside the window: reopen conflicts",
    "outside the window: cascade down",
    "outside the window: cascade up",
    "outside the window: no response conflicts",
    "outside the window: no response pairs",
];

/// Snapshot the status of every conflict with a pair in `window` (first and
/// last `VisitDate`), for [`status_changes`]. Call before
/// [`super::store::apply`], after [`super::history::snapshot`] (whose pair
/// snapshot [`status_changes`] reads). Work: one pass over the window's pairs.
///
/// Errors: PostgreSQL errors.
pub async fn snapshot_statuses(tx: &Transaction<'_>, schemas: &Schemas, window: (NaiveDate, NaiveDate)) -> Result<()> {
    let cvm = qualified(&schemas.conflict, "conflictvisitmaps");
    let conflicts = qualified(&schemas.conflict, "conflicts");
    let sql = format!(
        "CREATE TEMP TABLE thaw_conflict_status_before ON COMMIT DROP AS\n\
         SELECT k.\"CONFLICTID\" AS id, k.\"StatusFlag\"::text AS status FROM {conflicts} k\n\
         WHERE k.\"CONFLICTID\" IN (SELECT c.\"CONFLICTID\" FROM {cvm} c WHERE c.\"VisitDate\" BETWEEN $1 AND $2)"
    );
    tx.execute(sql.as_str(), &[&window.0, &window.1])
        .await
        .map_err(|e| from_postgres(e, "taking the pre-run snapshot of the conflicts' statuses"))?;
    tx.batch_execute(&format!("CREATE INDEX ON {CONFLICTS_BEFORE} (id); ANALYZE {CONFLICTS_BEFORE}"))
        .await
        .map_err(|e| from_postgres(e, "indexing the pre-run snapshot of the conflicts' statuses"))?;
    Ok(())
}

/// The net status changes of the night (docs/conflicts.md §8.2.2): the
/// pairs of the pre-run snapshot of [`super::history::snapshot`] and the
/// conflicts of [`snapshot_statuses`] whose status now differs, by new
/// status. `outside_window_status_writes` is left 0 (the caller adds the second pass's
/// statement counts). Call after [`super::store::apply`].
///
/// Errors: PostgreSQL errors.
pub async fn status_changes(tx: &Transaction<'_>, schemas: &Schemas) -> Result<StatusChanges> {
    let cvm = qualified(&schemas.conflict, "conflictvisitmaps");
    let conflicts = qualified(&schemas.conflict, "conflicts");
    let by_status = "count(*) FILTER (WHERE now_status = 'D')::int8, count(*) FILTER (WHERE now_status = 'R')::int8, \
                     count(*) FILTER (WHERE now_status = 'U')::int8, count(*) FILTER (WHERE now_status = 'N')::int8";
    let sql = format!(
        "SELECT 0 AS part, {by_status} FROM (SELECT c.\"StatusFlag\"::text AS now_status FROM {cvm} c JOIN {pairs} b ON b.id = c.\"ID\"\n\
           WHERE c.\"StatusFlag\"::text IS DISTINCT FROM b.status) p\n\
         UNION ALL\n\
         SELECT 1, {by_status} FROM (SELECT k.\"StatusFlag\"::text AS now_status FROM {conflicts} k JOIN {CONFLICTS_BEFORE} b ON b.id = k.\"CONFLICTID\"\n\
           WHERE k.\"StatusFlag\"::text IS DISTINCT FROM b.status) k\n\
         ORDER BY part",
        pairs = super::history::BEFORE,
    );
    let rows = tx.query(sql.as_str(), &[]).await.map_err(|e| from_postgres(e, "counting the night's status changes"))?;
    let count = |row: usize, i: usize| rows.get(row).map_or(0, |r| r.get::<_, i64>(i + 1) as u64);
    Ok(StatusChanges {
        pairs_deleted: count(0, 0),
        pairs_resolved: count(0, 1),
        pairs_reopened: count(0, 2),
        pairs_no_response: count(0, 3),
        conflicts_deleted: count(1, 0),
        conflicts_resolved: count(1, 1),
        conflicts_reopened: count(1, 2),
        conflicts_no_response: count(1, 3),
        outside_window_status_writes: 0,
    })
}
