-- The PostgreSQL analytics mirror: the 13 ANALYTICS.BI tables that conflict
-- detection reads, maintained by `thaw sync` (source `analytics` in
-- examples/config.json).
--
-- Names: lower-case tables, quoted column names exactly as in Snowflake
-- (docs/conflicts.md §2.1). Types follow the Scripts09 mirror
-- (appendix "Postgres analytics mirror": uuid ids, int8 application ids,
-- "Visit Date" date, timestamptz times) with two deliberate differences:
-- money and rate columns are numeric(p,s) matching the Snowflake NUMBER(p,s)
-- (the legacy `real` lost precision), and Latitude/Longitude are double
-- precision (Snowflake DOUBLE).
-- Every column here exists in the Snowflake table (or is the target of a
-- config column_mapping rename: "Updated Date"/"Updated Timestamp" ->
-- "Updated Datatimestamp"); source-only filter columns ("Source System",
-- "External Source", "Permanent Deleted", ...) are not mirrored.
-- Primary keys are the natural keys of docs/conflicts.md §2.1.

CREATE SCHEMA IF NOT EXISTS analytics;

CREATE TABLE IF NOT EXISTS analytics.dimprovider (
    "Provider Id" uuid NOT NULL,
    "Application Provider Id" int8,
    "Provider Name" varchar(200),
    "Address State" varchar(100),
    "Federal Tax Number" varchar(100),
    "Phone Number 1" varchar(30),
    "Is Active" bool,
    "Is Demo" bool,
    "Updated Datatimestamp" timestamptz,
    PRIMARY KEY ("Provider Id")
);

CREATE TABLE IF NOT EXISTS analytics.dimoffice (
    "Office Id" uuid NOT NULL,
    "Application Office Id" int8,
    "Office Name" varchar(100),
    "Is Active" bool,
    "Federal Tax Number" varchar(100),
    "NPI" varchar(100),
    "Updated Datatimestamp" timestamptz,
    PRIMARY KEY ("Office Id")
);

CREATE TABLE IF NOT EXISTS analytics.dimpayer (
    "Payer Id" uuid NOT NULL,
    "Application Payer Id" int8,
    "Payer Name" varchar(200),
    "Payer State" varchar(100),
    "Is Active" bool,
    "Is Demo" bool,
    "Updated Datatimestamp" timestamptz,
    PRIMARY KEY ("Payer Id")
);

CREATE TABLE IF NOT EXISTS analytics.dimcontract (
    "Contract Id" uuid NOT NULL,
    "Application Contract Id" int8,
    "Contract Name" varchar(250),
    "Is Active" bool,
    "Updated Datatimestamp" timestamptz,
    PRIMARY KEY ("Contract Id")
);

CREATE TABLE IF NOT EXISTS analytics.dimservicecode (
    "Service Code Id" uuid NOT NULL,
    "Application Service Code Id" int8,
    "Service Code" varchar(50),
    "Updated Datatimestamp" timestamptz,
    PRIMARY KEY ("Service Code Id")
);

CREATE TABLE IF NOT EXISTS analytics.dimuser (
    "User Id" varchar(50) NOT NULL,
    "Application User Id" int8,
    "User Fullname" varchar(200),
    "User Email Address" varchar(100),
    PRIMARY KEY ("User Id")
);

CREATE TABLE IF NOT EXISTS analytics.dimcaregiver (
    "Caregiver Id" uuid NOT NULL,
    "Application Caregiver Id" int8,
    "Caregiver Code" varchar(50),
    "Caregiver Firstname" varchar(50),
    "Caregiver Lastname" varchar(50),
    "Caregiver Fullname" varchar(101),
    "SSN" varchar(20),
    "Status" varchar(50),
    "Updated Datatimestamp" timestamptz,
    PRIMARY KEY ("Caregiver Id")
);

CREATE TABLE IF NOT EXISTS analytics.dimpatient (
    "Patient Id" uuid NOT NULL,
    "Payer Id" uuid,
    "Application Patient Id" int8,
    "Patient Firstname" varchar(100),
    "Patient Lastname" varchar(100),
    "Patient Name" varchar(201),
    "Admission Id" varchar(500),
    "Medicaid Number" varchar(100),
    "Status" varchar(50),
    "Has Visit" bool,
    "Updated Datatimestamp" timestamptz,
    PRIMARY KEY ("Patient Id")
);

CREATE TABLE IF NOT EXISTS analytics.dimpatientaddress (
    "Patient Address Id" uuid NOT NULL,
    "Application Patient Address Id" int8,
    "Patient Id" uuid,
    "Application Patient Id" int8,
    "Address Type" varchar(50),
    "Address Line 1" varchar(500),
    "Address Line 2" varchar(100),
    "City" varchar(255),
    "County" varchar(100),
    "Address State" varchar(100),
    "Zip Code" varchar(100),
    "Primary Address" bool,
    "Latitude" double precision,
    "Longitude" double precision,
    "Application Created UTC Timestamp" timestamptz,
    "Updated Datatimestamp" timestamptz,
    PRIMARY KEY ("Patient Address Id")
);

CREATE TABLE IF NOT EXISTS analytics.factcaregiverinservice (
    "Application Caregiver Inservice Id" int8 NOT NULL,
    "Environment" varchar(50) NOT NULL,
    "Caregiver Id" uuid,
    "Provider Id" uuid,
    "Office Id" uuid,
    "Inservice start date" timestamptz,
    "Inservice end date" timestamptz,
    "Updated Datatimestamp" timestamptz,
    PRIMARY KEY ("Application Caregiver Inservice Id", "Environment")
);

CREATE TABLE IF NOT EXISTS analytics.factcaregiverabsence (
    "Caregiver Vacation Id" int8 NOT NULL,
    "Environment" varchar(50) NOT NULL,
    "Global Caregiver Id" uuid,
    "Office Id" uuid,
    "Provider Id" uuid,
    "Start Date" timestamptz,
    "End Date" timestamptz,
    "Updated Datatimestamp" timestamptz,
    PRIMARY KEY ("Caregiver Vacation Id", "Environment")
);

CREATE TABLE IF NOT EXISTS analytics.factvisitcallperformance_cr (
    "Visit Id" uuid NOT NULL,
    "Application Visit Id" int8,
    "Visit Date" date,
    "Scheduled Start Time" timestamptz,
    "Scheduled End Time" timestamptz,
    "Visit Start Time" timestamptz,
    "Visit End Time" timestamptz,
    "Call In Time" timestamptz,
    "Call Out Time" timestamptz,
    "Call In GPS Coordinates" varchar(100),
    "Call Out GPS Coordinates" varchar(100),
    "Call Out Device Type" varchar(100),
    "Caregiver Id" uuid,
    "Application Caregiver Id" int8,
    "Provider Id" uuid,
    "Application Provider Id" int8,
    "Office Id" uuid,
    "Application Office Id" int8,
    "Patient Id" uuid,
    "Application Patient Id" int8,
    "Provider Patient Id" uuid,
    "Application Provider Patient Id" int8,
    "Payer Patient Id" uuid,
    "Application Payer Patient Id" int8,
    "Payer Id" uuid,
    "Application Payer Id" int8,
    "Contract Id" uuid,
    "Application Contract Id" int8,
    "Service Code Id" uuid,
    "Application Service Code Id" int8,
    "Bill Type" varchar(50),
    "Billed" varchar(3),
    "Billed Rate" numeric(19,3),
    "Bill Rate Non-Billed" numeric(18,6),
    "Billed Hours" numeric(38,6),
    "Total Billed Amount" numeric(19,3),
    "Invoice Date" date,
    "Is Missed" bool,
    "Missed Visit Reason" varchar(500),
    "Visit Updated Timestamp" timestamptz,
    "Visit Updated User Id" uuid,
    "Application Visit Updated User Id" int8,
    PRIMARY KEY ("Visit Id")
);

CREATE TABLE IF NOT EXISTS analytics.factvisitcallperformance_deleted_cr (
    "Visit Id" uuid NOT NULL,
    "Application Visit Id" int8,
    "Visit Date" date,
    "Scheduled Start Time" timestamptz,
    "Scheduled End Time" timestamptz,
    "Visit Start Time" timestamptz,
    "Visit End Time" timestamptz,
    "Call In Time" timestamptz,
    "Call Out Time" timestamptz,
    "Call In GPS Coordinates" varchar(100),
    "Call Out GPS Coordinates" varchar(100),
    "Call Out Device Type" varchar(100),
    "Caregiver Id" uuid,
    "Application Caregiver Id" int8,
    "Provider Id" uuid,
    "Application Provider Id" int8,
    "Office Id" uuid,
    "Application Office Id" int8,
    "Patient Id" uuid,
    "Application Patient Id" int8,
    "Provider Patient Id" uuid,
    "Application Provider Patient Id" int8,
    "Payer Patient Id" uuid,
    "Application Payer Patient Id" int8,
    "Payer Id" uuid,
    "Application Payer Id" int8,
    "Contract Id" uuid,
    "Application Contract Id" int8,
    "Service Code Id" uuid,
    "Application Service Code Id" int8,
    "Bill Type" varchar(50),
    "Billed" varchar(3),
    "Billed Rate" numeric(19,3),
    "Bill Rate Non-Billed" numeric(18,6),
    "Billed Hours" numeric(38,6),
    "Total Billed Amount" numeric(19,3),
    "Invoice Date" date,
    "Is Missed" bool,
    "Missed Visit Reason" varchar(500),
    "Visit Updated Timestamp" timestamptz,
    "Visit Updated User Id" uuid,
    "Application Visit Updated User Id" int8,
    PRIMARY KEY ("Visit Id")
);

-- Lookups the conflict sweep and the incremental sync make.
CREATE INDEX IF NOT EXISTS factvisitcallperformance_cr_visit_date
    ON analytics.factvisitcallperformance_cr ("Visit Date");
CREATE INDEX IF NOT EXISTS factvisitcallperformance_cr_caregiver
    ON analytics.factvisitcallperformance_cr ("Caregiver Id", "Visit Date");
CREATE INDEX IF NOT EXISTS factvisitcallperformance_cr_updated
    ON analytics.factvisitcallperformance_cr ("Visit Updated Timestamp");
CREATE INDEX IF NOT EXISTS factvisitcallperformance_deleted_cr_updated
    ON analytics.factvisitcallperformance_deleted_cr ("Visit Updated Timestamp");
CREATE INDEX IF NOT EXISTS dimcaregiver_ssn
    ON analytics.dimcaregiver ("SSN");
CREATE INDEX IF NOT EXISTS dimpatientaddress_patient
    ON analytics.dimpatientaddress ("Patient Id");
