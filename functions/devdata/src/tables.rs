//! The Snowflake tables the dataset generator creates, column by column.
//!
//! One definition per table serves three purposes: the Snowflake DDL
//! ([`TableDef::create_sql`]), the CSV header and column order of the
//! generated files, and the check that the PostgreSQL analytics mirror
//! (`schema/V2__analytics.sql`) has exactly the mirrored columns (unit test
//! below). Names and Snowflake types follow docs/conflicts.md §2.1;
//! the settings tables follow the appendix names of the `conflict` schema.

use thaw_engine::source::sql;

/// How a Snowflake column appears in the PostgreSQL mirror.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mirror {
    /// Copied under the same name.
    Same,
    /// Copied under another name (config `column_mapping`, e.g. the legacy
    /// `Updated Date` → `Updated Datatimestamp` watermark rename).
    Renamed(&'static str),
    /// Source-only: used by the migration `source_filter`, not copied.
    SourceOnly,
}

/// One column: quoted name exactly as in Snowflake, Snowflake type, mirror rule.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// Column name (case and spaces significant; always quoted).
    pub name: &'static str,
    /// Snowflake type as written in `CREATE TABLE`.
    pub sf_type: &'static str,
    /// How the column appears in the PostgreSQL mirror.
    pub mirror: Mirror,
}

pub(crate) const fn col(name: &'static str, sf_type: &'static str) -> Column {
    Column {
        name,
        sf_type,
        mirror: Mirror::Same,
    }
}
const fn src(name: &'static str, sf_type: &'static str) -> Column {
    Column {
        name,
        sf_type,
        mirror: Mirror::SourceOnly,
    }
}
const fn renamed(name: &'static str, sf_type: &'static str, target: &'static str) -> Column {
    Column {
        name,
        sf_type,
        mirror: Mirror::Renamed(target),
    }
}

/// One generated Snowflake table.
#[derive(Debug, Clone, Copy)]
pub struct TableDef {
    /// Snowflake database (`ANALYTICS` or `CONFLICTREPORT`).
    pub database: &'static str,
    /// Snowflake schema (`BI` or `PUBLIC`).
    pub schema: &'static str,
    /// Snowflake table name (upper case, as the legacy views).
    pub name: &'static str,
    /// Columns in file and DDL order.
    pub columns: &'static [Column],
}

impl TableDef {
    /// `"DB"."SCHEMA"."TABLE"`.
    pub fn qualified(&self) -> String {
        sql::table(self.database, self.schema, self.name)
    }

    /// `CREATE OR REPLACE TABLE` with every column quoted (idempotent re-seed).
    pub fn create_sql(&self) -> String {
        let cols: Vec<String> = self
            .columns
            .iter()
            .map(|c| format!("{} {}", sql::ident(c.name), c.sf_type))
            .collect();
        format!(
            "CREATE OR REPLACE TABLE {} ({})",
            self.qualified(),
            cols.join(", ")
        )
    }

    /// Position of a column; panics on a name that is not in the definition
    /// (a programming error in the generator, caught by the unit tests).
    pub fn position(&self, name: &str) -> usize {
        self.columns
            .iter()
            .position(|c| c.name == name)
            .unwrap_or_else(|| panic!("column {name} is not defined for {}", self.name))
    }

    /// Names of the columns the PostgreSQL mirror has, after renames, in order.
    pub fn mirrored_names(&self) -> Vec<&'static str> {
        self.columns
            .iter()
            .filter_map(|c| match c.mirror {
                Mirror::Same => Some(c.name),
                Mirror::Renamed(t) => Some(t),
                Mirror::SourceOnly => None,
            })
            .collect()
    }
}

const TZ: &str = "TIMESTAMP_TZ";

/// Columns shared by the visit fact and the deleted-visit fact (same layout).
const VISIT_COLUMNS: &[Column] = &[
    col("Visit Id", "VARCHAR(100)"),
    col("Application Visit Id", "VARCHAR(50)"),
    col("Visit Date", TZ),
    col("Scheduled Start Time", TZ),
    col("Scheduled End Time", TZ),
    col("Visit Start Time", TZ),
    col("Visit End Time", TZ),
    col("Call In Time", TZ),
    col("Call Out Time", TZ),
    col("Call In GPS Coordinates", "VARCHAR(100)"),
    col("Call Out GPS Coordinates", "VARCHAR(100)"),
    col("Call Out Device Type", "VARCHAR(20)"),
    col("Caregiver Id", "VARCHAR(50)"),
    col("Application Caregiver Id", "NUMBER(38,0)"),
    col("Provider Id", "VARCHAR(50)"),
    col("Application Provider Id", "VARCHAR(50)"),
    col("Office Id", "VARCHAR(50)"),
    col("Application Office Id", "VARCHAR(50)"),
    col("Patient Id", "VARCHAR(50)"),
    col("Application Patient Id", "NUMBER(38,0)"),
    col("Provider Patient Id", "VARCHAR"),
    col("Application Provider Patient Id", "NUMBER(38,0)"),
    col("Payer Patient Id", "VARCHAR"),
    col("Application Payer Patient Id", "NUMBER(38,0)"),
    col("Payer Id", "VARCHAR(50)"),
    col("Application Payer Id", "NUMBER(38,0)"),
    col("Contract Id", "VARCHAR(50)"),
    col("Application Contract Id", "VARCHAR(50)"),
    col("Service Code Id", "VARCHAR(50)"),
    col("Application Service Code Id", "NUMBER(38,0)"),
    col("Bill Type", "VARCHAR"),
    col("Billed", "VARCHAR(3)"),
    col("Billed Rate", "NUMBER(19,3)"),
    col("Bill Rate Non-Billed", "NUMBER(18,6)"),
    col("Billed Hours", "NUMBER(38,6)"),
    col("Total Billed Amount", "NUMBER(19,3)"),
    col("Invoice Date", TZ),
    col("Is Missed", "BOOLEAN"),
    col("Missed Visit Reason", "VARCHAR(500)"),
    col("Visit Updated Timestamp", TZ),
    col("Visit Updated User Id", "VARCHAR(50)"),
    col("Application Visit Updated User Id", "NUMBER(38,0)"),
    src("External Source", "VARCHAR(50)"),
    src("Permanent Deleted", "BOOLEAN"),
];

/// `ANALYTICS.BI.FACTVISITCALLPERFORMANCE_CR`: one row per visit.
pub const FACT_VISIT: TableDef = TableDef {
    database: "ANALYTICS",
    schema: "BI",
    name: "FACTVISITCALLPERFORMANCE_CR",
    columns: VISIT_COLUMNS,
};

/// `ANALYTICS.BI.FACTVISITCALLPERFORMANCE_DELETED_CR`: one row per deleted visit.
pub const FACT_VISIT_DELETED: TableDef = TableDef {
    database: "ANALYTICS",
    schema: "BI",
    name: "FACTVISITCALLPERFORMANCE_DELETED_CR",
    columns: VISIT_COLUMNS,
};

/// `ANALYTICS.BI.DIMCAREGIVER`: one row per caregiver per agency.
pub const DIM_CAREGIVER: TableDef = TableDef {
    database: "ANALYTICS",
    schema: "BI",
    name: "DIMCAREGIVER",
    columns: &[
        col("Caregiver Id", "VARCHAR(50)"),
        col("Application Caregiver Id", "NUMBER(38,0)"),
        col("Caregiver Code", "VARCHAR"),
        col("Caregiver Firstname", "VARCHAR"),
        col("Caregiver Lastname", "VARCHAR"),
        col("Caregiver Fullname", "VARCHAR"),
        col("SSN", "VARCHAR"),
        col("Status", "VARCHAR(500)"),
        src("Source System", "VARCHAR(3)"),
        col("Updated Datatimestamp", TZ),
    ],
};

/// `ANALYTICS.BI.DIMPROVIDER`: one row per agency.
pub const DIM_PROVIDER: TableDef = TableDef {
    database: "ANALYTICS",
    schema: "BI",
    name: "DIMPROVIDER",
    columns: &[
        col("Provider Id", "VARCHAR(50)"),
        col("Application Provider Id", "VARCHAR"),
        col("Provider Name", "VARCHAR"),
        col("Address State", "VARCHAR"),
        col("Federal Tax Number", "VARCHAR"),
        col("Phone Number 1", "VARCHAR"),
        col("Is Active", "BOOLEAN"),
        col("Is Demo", "BOOLEAN"),
        src("Environemnt", "VARCHAR(50)"),
        src("Source System", "VARCHAR(3)"),
        col("Updated Datatimestamp", TZ),
    ],
};

/// `ANALYTICS.BI.DIMOFFICE`.
pub const DIM_OFFICE: TableDef = TableDef {
    database: "ANALYTICS",
    schema: "BI",
    name: "DIMOFFICE",
    columns: &[
        col("Office Id", "VARCHAR(50)"),
        col("Application Office Id", "VARCHAR"),
        col("Office Name", "VARCHAR"),
        col("Is Active", "BOOLEAN"),
        col("Federal Tax Number", "VARCHAR"),
        col("NPI", "VARCHAR"),
        src("Source System", "VARCHAR(3)"),
        col("Updated Datatimestamp", TZ),
    ],
};

/// `ANALYTICS.BI.DIMPATIENT`.
pub const DIM_PATIENT: TableDef = TableDef {
    database: "ANALYTICS",
    schema: "BI",
    name: "DIMPATIENT",
    columns: &[
        col("Patient Id", "VARCHAR(50)"),
        col("Payer Id", "VARCHAR(50)"),
        col("Application Patient Id", "NUMBER(38,0)"),
        col("Patient Firstname", "VARCHAR"),
        col("Patient Lastname", "VARCHAR"),
        col("Patient Name", "VARCHAR"),
        col("Admission Id", "VARCHAR(500)"),
        col("Medicaid Number", "VARCHAR"),
        col("Status", "VARCHAR"),
        col("Has Visit", "BOOLEAN"),
        src("Source System", "VARCHAR(3)"),
        col("Updated Datatimestamp", TZ),
    ],
};

/// `ANALYTICS.BI.DIMPATIENTADDRESS`.
pub const DIM_PATIENT_ADDRESS: TableDef = TableDef {
    database: "ANALYTICS",
    schema: "BI",
    name: "DIMPATIENTADDRESS",
    columns: &[
        col("Patient Address Id", "VARCHAR(50)"),
        col("Application Patient Address Id", "NUMBER(38,0)"),
        col("Patient Id", "VARCHAR(50)"),
        col("Application Patient Id", "NUMBER(38,0)"),
        col("Address Type", "VARCHAR"),
        col("Address Line 1", "VARCHAR"),
        col("Address Line 2", "VARCHAR"),
        col("City", "VARCHAR"),
        col("County", "VARCHAR"),
        col("Address State", "VARCHAR"),
        col("Zip Code", "VARCHAR"),
        col("Primary Address", "BOOLEAN"),
        col("Latitude", "DOUBLE"),
        col("Longitude", "DOUBLE"),
        col("Application Created UTC Timestamp", "TIMESTAMP_LTZ"),
        src("Source System", "VARCHAR(3)"),
        renamed("Updated Timestamp", TZ, "Updated Datatimestamp"),
    ],
};

/// `ANALYTICS.BI.DIMPAYER`.
pub const DIM_PAYER: TableDef = TableDef {
    database: "ANALYTICS",
    schema: "BI",
    name: "DIMPAYER",
    columns: &[
        col("Payer Id", "VARCHAR(50)"),
        col("Application Payer Id", "VARCHAR"),
        col("Payer Name", "VARCHAR"),
        col("Payer State", "VARCHAR"),
        col("Is Active", "BOOLEAN"),
        col("Is Demo", "BOOLEAN"),
        src("Source System", "VARCHAR(3)"),
        col("Updated Datatimestamp", TZ),
    ],
};

/// `ANALYTICS.BI.DIMCONTRACT`.
pub const DIM_CONTRACT: TableDef = TableDef {
    database: "ANALYTICS",
    schema: "BI",
    name: "DIMCONTRACT",
    columns: &[
        col("Contract Id", "VARCHAR(50)"),
        col("Application Contract Id", "VARCHAR"),
        col("Contract Name", "VARCHAR"),
        col("Is Active", "BOOLEAN"),
        src("Source System", "VARCHAR(3)"),
        col("Updated Datatimestamp", TZ),
    ],
};

/// `ANALYTICS.BI.DIMSERVICECODE`.
pub const DIM_SERVICE_CODE: TableDef = TableDef {
    database: "ANALYTICS",
    schema: "BI",
    name: "DIMSERVICECODE",
    columns: &[
        col("Service Code Id", "VARCHAR(50)"),
        col("Application Service Code Id", "VARCHAR"),
        col("Service Code", "VARCHAR"),
        src("Is Active", "BOOLEAN"),
        src("Source System", "VARCHAR(3)"),
        col("Updated Datatimestamp", TZ),
    ],
};

/// `ANALYTICS.BI.DIMUSER`.
pub const DIM_USER: TableDef = TableDef {
    database: "ANALYTICS",
    schema: "BI",
    name: "DIMUSER",
    columns: &[
        col("User Id", "VARCHAR(50)"),
        col("Application User Id", "NUMBER(38,0)"),
        col("User Fullname", "VARCHAR"),
        col("User Email Address", "VARCHAR"),
        src("Username", "VARCHAR"),
        src("Is Support User", "BOOLEAN"),
        src("Source System", "VARCHAR(3)"),
    ],
};

/// `ANALYTICS.BI.FACTCAREGIVERINSERVICE`.
pub const FACT_INSERVICE: TableDef = TableDef {
    database: "ANALYTICS",
    schema: "BI",
    name: "FACTCAREGIVERINSERVICE",
    columns: &[
        col("Application Caregiver Inservice Id", "NUMBER(38,0)"),
        col("Environment", "VARCHAR(50)"),
        col("Caregiver Id", "VARCHAR(50)"),
        col("Provider Id", "VARCHAR(50)"),
        col("Office Id", "VARCHAR(50)"),
        col("Inservice start date", TZ),
        col("Inservice end date", TZ),
        src("Source System", "VARCHAR(3)"),
        renamed("Updated Date", TZ, "Updated Datatimestamp"),
    ],
};

/// `ANALYTICS.BI.FACTCAREGIVERABSENCE`.
pub const FACT_ABSENCE: TableDef = TableDef {
    database: "ANALYTICS",
    schema: "BI",
    name: "FACTCAREGIVERABSENCE",
    columns: &[
        col("Caregiver Vacation Id", "NUMBER(38,5)"),
        col("Environment", "VARCHAR(50)"),
        col("Global Caregiver Id", "VARCHAR(50)"),
        col("Office Id", "VARCHAR(50)"),
        col("Provider Id", "VARCHAR(50)"),
        col("Start Date", TZ),
        col("End Date", TZ),
        src("Active", "BOOLEAN"),
        src("Source System", "VARCHAR(3)"),
        renamed("Updated Date", TZ, "Updated Datatimestamp"),
    ],
};

/// `CONFLICTREPORT.PUBLIC.SETTINGS`: one row, `ID` = 1.
pub const SETTINGS: TableDef = TableDef {
    database: "CONFLICTREPORT",
    schema: "PUBLIC",
    name: "SETTINGS",
    columns: &[
        col("ExtraDistance", "NUMBER(38,0)"),
        col("ExtraDistancePer", "NUMBER(38,2)"),
        col("NORESPONSELIMITTIME", "NUMBER(38,0)"),
        col("ID", "NUMBER(38,0)"),
        col("UpdateCronFlag", "NUMBER(3,0)"),
        col("InsertCronFlag", "NUMBER(3,0)"),
        col("ConflictIDFlag", "NUMBER(3,0)"),
        col("GroupIDFlag", "NUMBER(3,0)"),
        col("VisitHistoryFlag", "NUMBER(3,0)"),
        col("LastLoadDate", "TIMESTAMP_NTZ"),
        col("InProgressFlag", "NUMBER(38,0)"),
    ],
};

/// `CONFLICTREPORT.PUBLIC.MPH`: distance bands (miles) → average speed (mph).
pub const MPH: TableDef = TableDef {
    database: "CONFLICTREPORT",
    schema: "PUBLIC",
    name: "MPH",
    columns: &[
        col("ID", "NUMBER(38,0)"),
        col("RECORDEDDATETIME", "TIMESTAMP_NTZ"),
        col("TYPE", "VARCHAR(50)"),
        col("From", "NUMBER(38,0)"),
        col("To", "NUMBER(38,0)"),
        col("AverageMilesPerHour", "NUMBER(38,0)"),
    ],
};

/// `CONFLICTREPORT.PUBLIC.EXCLUDED_SSN`.
pub const EXCLUDED_SSN: TableDef = TableDef {
    database: "CONFLICTREPORT",
    schema: "PUBLIC",
    name: "EXCLUDED_SSN",
    columns: &[col("ID", "NUMBER(38,0)"), col("SSN", "VARCHAR(50)")],
};

/// `CONFLICTREPORT.PUBLIC.EXCLUDED_AGENCY`.
pub const EXCLUDED_AGENCY: TableDef = TableDef {
    database: "CONFLICTREPORT",
    schema: "PUBLIC",
    name: "EXCLUDED_AGENCY",
    columns: &[
        col("ID", "NUMBER(38,0)"),
        col("AgencyName", "VARCHAR(100)"),
        col("ProviderID", "VARCHAR(50)"),
        col("AppProviderID", "VARCHAR(50)"),
    ],
};

/// The 13 `ANALYTICS.BI` tables, in load order.
pub const ANALYTICS_TABLES: [TableDef; 13] = [
    DIM_PROVIDER,
    DIM_OFFICE,
    DIM_PAYER,
    DIM_CONTRACT,
    DIM_SERVICE_CODE,
    DIM_USER,
    DIM_CAREGIVER,
    DIM_PATIENT,
    DIM_PATIENT_ADDRESS,
    FACT_INSERVICE,
    FACT_ABSENCE,
    FACT_VISIT,
    FACT_VISIT_DELETED,
];

/// The 4 `CONFLICTREPORT.PUBLIC` settings tables.
pub const CONFLICT_TABLES: [TableDef; 4] = [SETTINGS, MPH, EXCLUDED_SSN, EXCLUDED_AGENCY];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Column names per table from a `CREATE TABLE IF NOT EXISTS analytics.x (...)` file.
    fn pg_columns(ddl: &str) -> BTreeMap<String, Vec<String>> {
        let mut out = BTreeMap::new();
        let mut current: Option<(String, Vec<String>)> = None;
        for line in ddl.lines() {
            let t = line.trim();
            if let Some(rest) = t.strip_prefix("CREATE TABLE IF NOT EXISTS analytics.") {
                let name = rest
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .trim_end_matches('(')
                    .to_string();
                current = Some((name, Vec::new()));
            } else if t.starts_with(')') {
                if let Some((name, cols)) = current.take() {
                    out.insert(name, cols);
                }
            } else if let Some((_, cols)) = current.as_mut() {
                if let Some(rest) = t.strip_prefix('"') {
                    cols.push(rest.split('"').next().unwrap().to_string());
                }
            }
        }
        out
    }

    #[test]
    fn analytics_mirror_ddl_has_exactly_the_mirrored_columns() {
        let ddl = include_str!("../../../schema/V2__analytics.sql");
        let pg = pg_columns(ddl);
        assert_eq!(pg.len(), 13, "tables in V2__analytics.sql: {:?}", pg.keys());
        for t in ANALYTICS_TABLES {
            let name = t.name.to_lowercase();
            let cols = pg
                .get(&name)
                .unwrap_or_else(|| panic!("analytics.{name} missing from V2__analytics.sql"));
            assert_eq!(cols, &t.mirrored_names(), "columns of analytics.{name}");
        }
    }

    #[test]
    fn column_names_are_unique_per_table() {
        for t in ANALYTICS_TABLES.iter().chain(CONFLICT_TABLES.iter()) {
            let mut names: Vec<_> = t.columns.iter().map(|c| c.name).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(
                names.len(),
                t.columns.len(),
                "duplicate column in {}",
                t.name
            );
        }
    }

    #[test]
    fn create_sql_quotes_every_column() {
        let sql = MPH.create_sql();
        assert!(
            sql.starts_with(
                r#"CREATE OR REPLACE TABLE "CONFLICTREPORT"."PUBLIC"."MPH" ("ID" NUMBER(38,0)"#
            ),
            "{sql}"
        );
        assert!(
            sql.contains(r#""From" NUMBER(38,0), "To" NUMBER(38,0)"#),
            "{sql}"
        );
    }
}

#[cfg(test)]
mod example_config_tests {
    use super::*;
    use thaw_engine::config::Config;

    fn example() -> Config {
        let text = include_str!("../../../examples/config.json");
        // The optional endpoint and CA file keep their empty defaults (an
        // endpoint must be an IP:port address, checked by validation).
        let env = |name: &str| match name {
            "THAW_SF_ENDPOINT" | "THAW_SF_CA_FILE" => None,
            n if n.ends_with("PORT") => Some("5432".to_string()),
            n => Some(format!("value-of-{n}")),
        };
        Config::from_text(text, "examples/config.json", &env).expect("examples/config.json loads")
    }

    /// Every table of examples/config.json exists in the generated source with
    /// the named columns, and its target is the mirror table of V2__analytics.sql.
    #[test]
    fn example_config_matches_the_generated_tables() {
        let config = example();
        let mut seen = 0;
        for source in &config.sources {
            for t in &source.tables {
                let def = ANALYTICS_TABLES
                    .iter()
                    .chain(CONFLICT_TABLES.iter())
                    .find(|d| {
                        d.name == t.source
                            && d.database == source.source_sf_database
                            && d.schema == source.source_sf_schema
                    })
                    .unwrap_or_else(|| {
                        panic!(
                            "{} is not a generated table of {}.{}",
                            t.source, source.source_sf_database, source.source_sf_schema
                        )
                    });
                assert_eq!(t.target, def.name.to_lowercase());
                let has = |c: &str| def.columns.iter().any(|col| col.name == c);
                let mirrored = def.mirrored_names();
                for c in t.chunking_columns.iter().chain(t.source_watermark.iter()) {
                    assert!(has(c), "{}: source column {c}", def.name);
                }
                for c in t.uniqueness_columns.iter().chain(t.target_watermark.iter()) {
                    assert!(
                        mirrored.iter().any(|m| m == c),
                        "{}: target column {c}",
                        def.name
                    );
                }
                for (from, to) in &t.column_mapping {
                    assert!(
                        def.columns
                            .iter()
                            .any(|c| c.name == from
                                && matches!(c.mirror, Mirror::Renamed(t) if t == to)),
                        "{}: mapping {from} -> {to}",
                        def.name
                    );
                }
                if let Some(filter) = &t.source_filter {
                    for quoted in filter.split('"').skip(1).step_by(2) {
                        assert!(has(quoted), "{}: filter column {quoted}", def.name);
                    }
                }
                assert!(
                    !t.uniqueness_columns.is_empty(),
                    "{} has no uniqueness_columns",
                    def.name
                );
                seen += 1;
            }
        }
        assert_eq!(seen, 17);
        let conflicts = config.conflicts.expect("conflicts section");
        assert_eq!(conflicts.time_zone.as_deref(), Some("America/New_York"));
    }
}
