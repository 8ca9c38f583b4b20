//! The web application's main reads of the `conflict` schema, and the index
//! each one must use (docs/conflicts.md §15).
//!
//! The application reads `conflictvisitmaps` for its list pages (filtered by
//! provider or payer, status and a date range, newest first), its detail
//! pages (by `CONFLICTID` or by visit) and its group and caregiver views. The
//! indexes behind them are created by `schema/V9__conflict_app_indexes.sql`;
//! [`QUERIES`] lists every read with the index names that may serve it, and
//! `functions/engine/tests/conflicts_app_queries.rs` fails when a listed
//! query stops using one of them on a table of realistic size.

use chrono::NaiveDate;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

/// A parameter a query takes, in `$n` order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    /// `"ProviderID"` (uuid).
    Provider,
    /// `"PayerID"` (uuid).
    Payer,
    /// The `"StatusFlag"` values shown (text[]).
    Statuses,
    /// First `"VisitDate"` of the range (date, inclusive).
    From,
    /// Last `"VisitDate"` of the range (date, inclusive).
    To,
    /// `"CONFLICTID"` (int8).
    ConflictId,
    /// `"VisitID"` (uuid).
    Visit,
    /// `"GroupID"` (int8).
    Group,
    /// `"SSN"` (text).
    Ssn,
}

/// Values for every [`Param`], e.g. taken from existing rows.
#[derive(Debug, Clone)]
pub struct Sample {
    /// A provider with conflicts.
    pub provider: Uuid,
    /// A payer with conflicts.
    pub payer: Uuid,
    /// Status flags shown by the list pages (`U`, `N`, `W`, `I`, `R`, `D`).
    pub statuses: Vec<String>,
    /// First visit date of the list range.
    pub from: NaiveDate,
    /// Last visit date of the list range.
    pub to: NaiveDate,
    /// An existing `CONFLICTID`.
    pub conflict_id: i64,
    /// An existing `VisitID`.
    pub visit: Uuid,
    /// An existing `GroupID`.
    pub group: i64,
    /// An existing `SSN`.
    pub ssn: String,
}

/// One read of the application.
#[derive(Debug, Clone, Copy)]
pub struct AppQuery {
    /// Short name (used in test output and the benchmark).
    pub name: &'static str,
    /// The statement, with `$n` parameters in [`AppQuery::params`] order.
    pub sql: &'static str,
    /// Its parameters.
    pub params: &'static [Param],
    /// Index names of `conflict.conflictvisitmaps` any one of which must
    /// appear in the plan.
    pub indexes: &'static [&'static str],
}

impl AppQuery {
    /// The query's parameters taken from `sample`, ready for
    /// `tokio_postgres::Client::query`.
    pub fn bind<'a>(&self, sample: &'a Sample) -> Vec<&'a (dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| -> &'a (dyn ToSql + Sync) {
                match p {
                    Param::Provider => &sample.provider,
                    Param::Payer => &sample.payer,
                    Param::Statuses => &sample.statuses,
                    Param::From => &sample.from,
                    Param::To => &sample.to,
                    Param::ConflictId => &sample.conflict_id,
                    Param::Visit => &sample.visit,
                    Param::Group => &sample.group,
                    Param::Ssn => &sample.ssn,
                }
            })
            .collect()
    }
}

/// Every listed read of the application, with the indexes that serve it.
pub const QUERIES: &[AppQuery] = &[
    AppQuery {
        name: "provider list (status, date range, newest first)",
        sql: "SELECT \"CONFLICTID\", \"VisitID\", \"ConVisitID\", \"VisitDate\", \"StatusFlag\", \"ProviderName\", \"ConProviderName\" \
              FROM conflict.conflictvisitmaps \
              WHERE \"ProviderID\" = $1 AND \"StatusFlag\" = ANY($2) AND \"VisitDate\" BETWEEN $3 AND $4 \
              ORDER BY \"VisitDate\" DESC, \"CONFLICTID\" LIMIT 50",
        params: &[Param::Provider, Param::Statuses, Param::From, Param::To],
        indexes: &["idx_cvm_provider_status_date"],
    },
    AppQuery {
        name: "payer list (status, date range, newest first)",
        sql: "SELECT \"CONFLICTID\", \"VisitID\", \"ConVisitID\", \"VisitDate\", \"StatusFlag\", \"ProviderName\", \"ConProviderName\" \
              FROM conflict.conflictvisitmaps \
              WHERE \"PayerID\" = $1 AND \"StatusFlag\" = ANY($2) AND \"VisitDate\" BETWEEN $3 AND $4 \
              ORDER BY \"VisitDate\" DESC, \"CONFLICTID\" LIMIT 50",
        params: &[Param::Payer, Param::Statuses, Param::From, Param::To],
        indexes: &["idx_cvm_payer_status_date"],
    },
    AppQuery {
        name: "conflict detail by CONFLICTID",
        sql: "SELECT * FROM conflict.conflictvisitmaps WHERE \"CONFLICTID\" = $1",
        params: &[Param::ConflictId],
        indexes: &["idx_conflictvisitmaps_conflictid"],
    },
    AppQuery {
        name: "conflict detail by visit",
        sql: "SELECT * FROM conflict.conflictvisitmaps WHERE \"VisitID\" = $1",
        params: &[Param::Visit],
        indexes: &["idx_cvm_visitids_unique", "idx_conflictvisitmaps_visitid"],
    },
    AppQuery {
        name: "group view",
        sql: "SELECT \"CONFLICTID\", \"VisitID\", \"ConVisitID\", \"VisitDate\", \"StatusFlag\" \
              FROM conflict.conflictvisitmaps WHERE \"GroupID\" = $1 ORDER BY \"VisitDate\", \"CONFLICTID\"",
        params: &[Param::Group],
        indexes: &["idx_cvm_groupid"],
    },
    AppQuery {
        name: "caregiver view (SSN, date range)",
        sql: "SELECT \"CONFLICTID\", \"VisitID\", \"ConVisitID\", \"VisitDate\", \"StatusFlag\" \
              FROM conflict.conflictvisitmaps WHERE \"SSN\" = $1 AND \"VisitDate\" BETWEEN $2 AND $3 ORDER BY \"VisitDate\"",
        params: &[Param::Ssn, Param::From, Param::To],
        indexes: &["idx_cvm_ssn_visitdate"],
    },
];

/// Names of every index node (`"Index Name"`) in an `EXPLAIN (FORMAT JSON)`
/// plan, depth first.
pub fn plan_indexes(plan: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(serde_json::Value::String(name)) = m.get("Index Name") {
                    out.push(name.clone());
                }
                m.values().for_each(|x| walk(x, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    walk(plan, &mut out);
    out
}
