//! Detection settings: the `conflicts` section of the config plus the
//! user-maintained reference tables in the conflict schema (`settings`,
//! `mph`, `excluded_ssn`, `excluded_agency`).

use std::collections::HashSet;

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, Utc};
use chrono_tz::Tz;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use super::columns::ColumnTypes;
use super::distance::{MphBand, MphBands};
use crate::config::{ConflictSettings, GpsPriority};
use crate::error::{from_postgres, Error, Result};
use crate::sink::qualified;

/// Default zone of rule comparisons, `VisitDate` and "today" (docs/conflicts.md §D9).
pub const DEFAULT_TIME_ZONE: &str = "America/New_York";
/// Candidate window: years back from today (docs/conflicts.md §4.1, `lookback_years`).
pub const LOOKBACK_YEARS: u32 = 2;
/// Candidate window: days ahead of today (`lookforward_days`).
pub const LOOKFORWARD_DAYS: u64 = 45;
/// Characters trimmed from SSNs, here and in the candidate query (`btrim(x, ' ')`):
/// Snowflake's `TRIM` removes blank spaces only, so a tab or a line break is
/// part of the SSN (docs/conflicts.md §10.2).
pub const SSN_TRIM_CHARS: &[char] = &[' '];

/// Caregivers (by SSN) and agencies never considered (docs/conflicts.md §4.1.4).
///
/// NULL-safe (docs/conflicts.md §D3): NULL or blank entries exclude nothing. SSNs are
/// compared trimmed on both sides (docs/conflicts.md §D11).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exclusions {
    ssns: HashSet<String>,
    providers: HashSet<Uuid>,
}

impl Exclusions {
    /// Build from the raw `EXCLUDED_SSN."SSN"` and `EXCLUDED_AGENCY."ProviderID"` values.
    pub fn new(ssns: impl IntoIterator<Item = Option<String>>, providers: impl IntoIterator<Item = Option<Uuid>>) -> Self {
        Exclusions {
            ssns: ssns
                .into_iter()
                .flatten()
                .map(|s| trim_ssn(&s).to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            providers: providers.into_iter().flatten().collect(),
        }
    }

    /// Whether the caregiver with this SSN (surrounding spaces ignored) is excluded.
    pub fn excludes_ssn(&self, ssn: &str) -> bool {
        self.ssns.contains(trim_ssn(ssn))
    }

    /// Whether the agency is excluded.
    pub fn excludes_provider(&self, provider_id: &Uuid) -> bool {
        self.providers.contains(provider_id)
    }

    /// The excluded SSNs (trimmed, non-blank), sorted: for SQL parameters.
    pub fn ssn_list(&self) -> Vec<String> {
        let mut v: Vec<String> = self.ssns.iter().cloned().collect();
        v.sort();
        v
    }

    /// The excluded agencies (no NULLs), sorted: for SQL parameters.
    pub fn provider_list(&self) -> Vec<Uuid> {
        let mut v: Vec<Uuid> = self.providers.iter().copied().collect();
        v.sort();
        v
    }
}

/// The SSN as the caregiver identity: surrounding spaces removed, as
/// Snowflake's `TRIM` (tabs and line breaks stay, docs/conflicts.md §10.2).
pub fn trim_ssn(ssn: &str) -> &str {
    ssn.trim_matches(SSN_TRIM_CHARS)
}

/// Everything [`super::detect`] needs besides the visits.
#[derive(Debug, Clone)]
pub struct DetectionSettings {
    /// Zone whose wall clock the rules compare (docs/conflicts.md §D9).
    pub time_zone: Tz,
    /// `SETTINGS."ExtraDistancePer"`: distance multiplier (1 + ExtraDistance/100), > 0.
    pub extra_distance_per: f64,
    /// `conflict.mph`, validated.
    pub mph: MphBands,
    /// Coordinate order for rule 7.
    pub gps_priority: GpsPriority,
    /// Excluded SSNs and agencies.
    pub exclusions: Exclusions,
}

/// Inclusive candidate window `[today − 2 years, today + 45 days]` (docs/conflicts.md §4.1.1;
/// Feb 29 minus 2 years is Feb 28, as Snowflake `DATEADD`).
pub fn candidate_window(today: NaiveDate) -> (NaiveDate, NaiveDate) {
    let from = today.checked_sub_months(Months::new(12 * LOOKBACK_YEARS)).unwrap_or(NaiveDate::MIN);
    let to = today.checked_add_days(Days::new(LOOKFORWARD_DAYS)).unwrap_or(NaiveDate::MAX);
    (from, to)
}

/// Zone, "today" and GPS priority from the `conflicts` config section.
///
/// `today` is `conflicts.today` when given, else the date of `now` in the zone.
/// Errors ([`crate::ErrorKind::ConfigInvalid`]) name the key and a valid example.
pub fn from_config(config: &ConflictSettings, now: DateTime<Utc>) -> Result<(Tz, NaiveDate, GpsPriority)> {
    let zone_name = config.time_zone.as_deref().unwrap_or(DEFAULT_TIME_ZONE);
    let zone: Tz = zone_name.parse().map_err(|_| {
        Error::config(format!("conflicts.time_zone '{zone_name}' is not an IANA time zone; use a name such as America/New_York"))
    })?;
    let today = match config.today.as_deref() {
        Some(text) => NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
            .map_err(|e| Error::config(format!("conflicts.today '{text}' is not a date ({e}); use YYYY-MM-DD, e.g. 2025-03-10, or remove it to use the current date")))?,
        None => now.with_timezone(&zone).date_naive(),
    };
    // PostgreSQL reads dates of years 1–9999 in the ISO form the window is
    // written in; outside them the candidate read failed with a cryptic
    // ChunkFailed (docs/conflicts.md §4.1.1).
    let (from, to) = candidate_window(today);
    if from.year() < 1 || to.year() > 9999 {
        return Err(Error::config(format!(
            "conflicts.today (or --today) {today} gives the candidate window {from} to {to}, outside the years 1 to 9999; \
             give a date between 0003-01-01 and 9999-11-16"
        )));
    }
    let gps_priority = config.gps_priority.unwrap_or_default();
    Ok((zone, today, gps_priority))
}

/// Read `settings`, `mph`, `excluded_ssn` and `excluded_agency` from `conflict_schema`.
///
/// Every column is read through [`ColumnTypes::expr`]: numbers may be
/// `bigint`, `integer`, `numeric`, `real` or `double precision`, ids `uuid`
/// or `text` (docs/conflicts.md §2.4).
///
/// Returns the settings and the warnings about the MPH table.
/// Errors: [`crate::ErrorKind::ConfigInvalid`] when SETTINGS does not hold
/// exactly one row with a positive `ExtraDistancePer`, the MPH table is
/// invalid ([`MphBands::new`]; `From`/`To` must be whole miles), or an
/// excluded agency is not a UUID; [`crate::ErrorKind::SchemaMismatch`] when a
/// table or column is missing or has a type that cannot hold the value.
pub async fn load(
    client: &impl GenericClient,
    conflict_schema: &str,
    time_zone: Tz,
    gps_priority: GpsPriority,
) -> Result<(DetectionSettings, Vec<String>)> {
    use super::columns::Want::{Float8, Text};
    let types = ColumnTypes::load(client, conflict_schema, &format!("'{}'", time_zone.name())).await?;
    let table = |t: &str| qualified(conflict_schema, t);
    let query = |sql: String, what: &'static str| async move {
        client.query(&sql, &[]).await.map_err(|e| from_postgres(e, format!("reading {conflict_schema}.{what}")))
    };
    let rows = query(format!("SELECT {} FROM {}", types.expr("", "settings", "ExtraDistancePer", Float8)?, table("settings")), "settings").await?;
    let extra_distance_per: f64 = match rows.as_slice() {
        [row] => row.try_get::<_, Option<f64>>(0).ok().flatten().filter(|v| v.is_finite() && *v > 0.0).ok_or_else(|| {
            Error::config(format!(
                "{conflict_schema}.settings.\"ExtraDistancePer\" is NULL or not positive; set it to 1 + ExtraDistance/100 (e.g. 1.2 for 20 %)"
            ))
        })?,
        rows => {
            return Err(Error::config(format!(
                "{conflict_schema}.settings must hold exactly one row (ID = 1) but holds {}; sync CONFLICTREPORT.PUBLIC.SETTINGS or insert the row",
                rows.len()
            )))
        }
    };
    let rows = query(
        format!(
            "SELECT {id}, {from}, {to}, {mph} FROM {t} ORDER BY 1",
            id = types.expr("", "mph", "ID", Text)?,
            from = types.expr("", "mph", "From", Float8)?,
            to = types.expr("", "mph", "To", Float8)?,
            mph = types.expr("", "mph", "AverageMilesPerHour", Float8)?,
            t = table("mph")
        ),
        "mph",
    )
    .await?;
    let mut bands = Vec::with_capacity(rows.len());
    for row in rows {
        let decode = |e: tokio_postgres::Error| Error::internal(format!("decoding {conflict_schema}.mph: {e}"));
        let id: Option<String> = row.try_get(0).map_err(decode)?;
        let from: Option<f64> = row.try_get(1).map_err(decode)?;
        let to: Option<f64> = row.try_get(2).map_err(decode)?;
        let mph: Option<f64> = row.try_get(3).map_err(decode)?;
        let id = id.unwrap_or_else(|| "NULL".into());
        let whole = |v: f64, col: &str| -> Result<i64> {
            if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
                Ok(v as i64)
            } else {
                Err(Error::config(format!("{conflict_schema}.mph row ID {id}: \"{col}\" is {v}, not a whole number of miles; bands are whole miles (docs/conflicts.md §R7.3)")))
            }
        };
        match (from, to, mph) {
            (Some(from), Some(to), Some(mph)) => bands.push(MphBand { from: whole(from, "From")?, to: whole(to, "To")?, mph }),
            _ => {
                return Err(Error::config(format!(
                    "{conflict_schema}.mph row ID {id} has a NULL \"From\", \"To\" or \"AverageMilesPerHour\"; complete or delete it"
                )))
            }
        }
    }
    let (mph, warnings) = MphBands::new(bands).map_err(|e| e.context(format!("{conflict_schema}.mph")))?;
    for w in &warnings {
        tracing::warn!(warning = %w, "MPH table");
    }
    let text_column = |rows: Vec<tokio_postgres::Row>, what: &str| -> Result<Vec<Option<String>>> {
        rows.iter().map(|r| r.try_get::<_, Option<String>>(0).map_err(|e| Error::internal(format!("decoding {conflict_schema}.{what}: {e}")))).collect()
    };
    let ssns = text_column(
        query(format!("SELECT {} FROM {}", types.expr("", "excluded_ssn", "SSN", Text)?, table("excluded_ssn")), "excluded_ssn").await?,
        "excluded_ssn",
    )?;
    let agencies = text_column(
        query(format!("SELECT {} FROM {}", types.expr("", "excluded_agency", "ProviderID", Text)?, table("excluded_agency")), "excluded_agency").await?,
        "excluded_agency",
    )?;
    let mut providers = Vec::with_capacity(agencies.len());
    for text in agencies.into_iter().flatten() {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            continue; // blank excludes nothing (docs/conflicts.md §D3)
        }
        let id = Uuid::parse_str(trimmed).map_err(|_| {
            Error::config(format!(
                "{conflict_schema}.excluded_agency.\"ProviderID\" '{trimmed}' is not a UUID; correct or delete that row (provider ids are the \"Provider Id\" of analytics.dimprovider)"
            ))
        })?;
        providers.push(Some(id));
    }
    let exclusions = Exclusions::new(ssns, providers);
    Ok((DetectionSettings { time_zone, extra_distance_per, mph, gps_priority, exclusions }, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Finding: `--today 0001-01-01` or `9999-12-31` failed the candidate
    /// read with `ChunkFailed` (exit 1) on a date PostgreSQL cannot read.
    #[test]
    fn a_today_whose_window_leaves_years_1_to_9999_is_bad_input() {
        let at = |today: &str| ConflictSettings { today: Some(today.into()), ..Default::default() };
        for today in ["0001-01-01", "0002-12-31", "9999-12-31", "9999-11-17"] {
            let err = from_config(&at(today), Utc::now()).unwrap_err();
            assert_eq!(err.kind, crate::ErrorKind::ConfigInvalid, "{today}");
            assert!(err.message.contains("outside the years 1 to 9999"), "{today}: {}", err.message);
        }
        for today in ["0003-01-01", "9999-11-16", "2025-03-10"] {
            assert!(from_config(&at(today), Utc::now()).is_ok(), "{today}");
        }
    }

    #[test]
    fn exclusions_ignore_nulls_and_blanks_and_trim_both_sides() {
        let a = Uuid::from_u128(1);
        let ex = Exclusions::new(vec![None, Some("  ".into()), Some(" 123-45-6789 ".into())], vec![None, Some(a)]);
        assert!(ex.excludes_ssn("123-45-6789"));
        assert!(ex.excludes_ssn("123-45-6789  "));
        // Snowflake TRIM removes spaces only: a tab makes it another SSN (docs/conflicts.md §10.2).
        assert!(!ex.excludes_ssn("\t123-45-6789"));
        assert!(!ex.excludes_ssn("999-99-9999"));
        assert!(!ex.excludes_ssn(""));
        assert!(ex.excludes_provider(&a));
        assert!(!ex.excludes_provider(&Uuid::from_u128(2)));
        // A NULL-only agency list excludes nothing (the [SF] NOT IN would drop every visit).
        let none = Exclusions::new(Vec::<Option<String>>::new(), vec![None]);
        assert!(!none.excludes_provider(&a));
    }

    #[test]
    fn window_is_two_years_back_and_45_days_ahead_inclusive() {
        let d = |y, m, dd| NaiveDate::from_ymd_opt(y, m, dd).unwrap();
        assert_eq!(candidate_window(d(2025, 3, 10)), (d(2023, 3, 10), d(2025, 4, 24)));
        assert_eq!(candidate_window(d(2024, 2, 29)).0, d(2022, 2, 28));
    }

    #[test]
    fn config_errors_name_the_key() {
        let now = Utc::now();
        let cfg = ConflictSettings { time_zone: Some("Mars/Base".into()), ..Default::default() };
        assert!(from_config(&cfg, now).unwrap_err().message.contains("conflicts.time_zone 'Mars/Base'"));
        let cfg = ConflictSettings { today: Some("10/03/2025".into()), ..Default::default() };
        assert!(from_config(&cfg, now).unwrap_err().message.contains("conflicts.today"));
        let cfg = ConflictSettings { today: Some("2025-03-10".into()), gps_priority: Some(GpsPriority::Legacy), ..Default::default() };
        let (zone, today, gps) = from_config(&cfg, now).unwrap();
        assert_eq!((zone.name(), today, gps), ("America/New_York", NaiveDate::from_ymd_opt(2025, 3, 10).unwrap(), GpsPriority::Legacy));
    }
}
