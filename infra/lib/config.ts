/**
 * Per-environment settings of the thaw AWS estate, read from
 * `infra/config/<env>.json` and validated before any construct is built.
 *
 * Every number carries its unit in its name (`Mb`, `Seconds`, `Days`,
 * `Percent`, `Bytes`, `Acu`). A bad file fails synth with a message that names
 * the file, the field and what to put there.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Environments that have a config file. */
export const ENVIRONMENTS = ['dev', 'qa', 'prod'] as const;
/** One of {@link ENVIRONMENTS}. */
export type EnvironmentName = (typeof ENVIRONMENTS)[number];

/**
 * The Lambda functions of the estate. Each name is also the Rust crate (and
 * binary) under `functions/<name>/` that cargo-lambda builds.
 */
export const FUNCTION_NAMES = [
  'plan',
  'copy-chunk',
  'merge',
  'reconcile',
  'conflict-create',
  'fail-run',
  'schema-migrate',
] as const;
/** One of {@link FUNCTION_NAMES}. */
export type FunctionName = (typeof FUNCTION_NAMES)[number];

/** Memory (MB), timeout (s) and reserved concurrency of one Lambda function. */
export interface FunctionSettings {
  memoryMb: number;
  timeoutSeconds: number;
  reservedConcurrency: number;
}

/** The validated content of `infra/config/<env>.json`. */
export interface EnvironmentConfig {
  environment: EnvironmentName;
  /** 12-digit AWS account the stack deploys to (deploy refuses any other). */
  account: string;
  region: string;
  /** Existing VPC and private subnets (with egress), imported by id: no lookups. */
  network: {
    vpcId: string;
    availabilityZones: string[];
    /** One per availability zone, same order. */
    privateSubnetIds: string[];
  };
  database: {
    /** Aurora PostgreSQL engine version, 16.x. */
    engineVersion: string;
    databaseName: string;
    /** Serverless v2 minimum capacity; 0 enables auto-pause (only without RDS Proxy). */
    minAcu: number;
    maxAcu: number;
    /** Idle minutes before auto-pause when minAcu is 0; null otherwise. */
    autoPauseMinutes: number | null;
    backupRetentionDays: number;
    deletionProtection: boolean;
    /** Keep a final snapshot when the stack deletes the cluster. */
    snapshotOnDelete: boolean;
    adminRotationDays: number;
    roleRotationDays: number;
  };
  proxy: {
    enabled: boolean;
    /** copy-chunk connects to the writer directly (long COPY sessions would pin proxy connections). */
    bulkLoadBypassesProxy: boolean;
    maxConnectionsPercent: number;
    maxIdleConnectionsPercent: number;
    borrowTimeoutSeconds: number;
    idleClientTimeoutMinutes: number;
  };
  functions: {
    /** `x86_64`, `arm64`, or `auto` (arm64 only when the aarch64 Rust target is installed). */
    architecture: 'x86_64' | 'arm64' | 'auto';
    defaults: FunctionSettings;
    overrides: Partial<Record<FunctionName, Partial<FunctionSettings>>>;
  };
  workflow: {
    /** Distributed Map MaxConcurrency (concurrent copy-chunk children). */
    maxConcurrency: number;
    /** Distributed Map ToleratedFailurePercentage, 0..100. */
    toleratedFailurePercentage: number;
    executionTimeoutHours: number;
  };
  schedule: {
    enabled: boolean;
    /** EventBridge Scheduler cron: `minutes hours day-of-month month day-of-week year`. */
    cron: string;
    /** IANA time zone the cron is evaluated in. */
    timeZone: string;
    /**
     * Whether the nightly execution may replace the tables marked
     * `truncate_onstart` (its input's `allow_truncate`). Such tables are
     * reloaded whole every run, and a replacement keeps the old rows until
     * every chunk has loaded (docs/sync.md §8.1); with `false`, a nightly run
     * refuses them once they hold rows, as `thaw run` without
     * `--allow-truncate` does.
     */
    allowTruncate: boolean;
  };
  /**
   * The dual-read validation window (docs/reconcile.md §10, ops/cutover.md
   * §1): executions of the sync state machine started on `firstDate`
   * through `lastDate` (UTC calendar days, `YYYY-MM-DD`, both included) run
   * the DualRead state after conflict-create. Both null: no window (an
   * execution input `{"dual_read": true}` still runs it once).
   */
  dualRead: {
    firstDate: string | null;
    lastDate: string | null;
    /** Snowflake database of the legacy conflict tables (`CONFLICTREPORT`). */
    snowflakeDatabase: string;
    /** Their Snowflake schema (`PUBLIC`). */
    snowflakeSchema: string;
  };
  logs: { retentionDays: number };
  storage: { manifestExpiryDays: number; accessLogExpiryDays: number };
  /**
   * The staging bucket Snowflake unloads Parquet into (`COPY INTO @stage`,
   * docs/sync.md §13) and the IAM role its storage integration assumes.
   * The two Snowflake fields come from `DESC INTEGRATION`
   * (ops/snowflake-storage-integration.md); while they are null the bucket
   * exists but no role is created.
   */
  staging: {
    /** Unloaded files expire this many days after they were written. */
    expiryDays: number;
    /** Key prefix Snowflake may write under and copy-chunk may read (`unload/`). */
    prefix: string;
    /** `STORAGE_AWS_IAM_USER_ARN` of the storage integration, or null. */
    snowflakeIamUserArn: string | null;
    /** `STORAGE_AWS_EXTERNAL_ID` of the storage integration, or null (with the ARN). */
    snowflakeExternalId: string | null;
  };
  alarms: {
    /** Optional e-mail subscribed to the alarm topic. */
    email: string | null;
    /** Prefix of the runbook links put in every alarm description (ends with `/`). */
    runbookBaseUrl: string;
    lambdaErrorsThreshold: number;
    /** Alarm when p99 duration exceeds this fraction of the function timeout. */
    durationFractionOfTimeout: number;
    auroraCpuPercent: number;
    acuUtilizationPercent: number;
    maxConnections: number;
    replicaLagMilliseconds: number;
    freeLocalStorageBytes: number;
    /** Alarm when the last verified sync is older than this (metric emitted by reconcile). */
    freshnessHours: number;
    /** Alarm when conflict-create has not been invoked for this many hours. */
    conflictCreateMaxGapHours: number;
    /**
     * Alarm when reconcile reports a table whose least recently verified
     * slice is older than this (`Thaw/ReconcileFreshnessHours`; the rolling
     * period plus a day, 8 × 24 = 192, by default).
     */
    reconcileFreshnessHours: number;
  };
  datadog: {
    enabled: boolean;
    site: string;
    /** Version of the `Datadog-Extension` Lambda layer. */
    extensionLayerVersion: number;
    apiKeySecretArn: string | null;
    /** Datadog forwarder Lambda that receives the log groups' subscription filters. */
    forwarderArn: string | null;
  };
}

/** Directory holding `<env>.json`. */
export const CONFIG_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'config');

/** Settings of `name` after applying its overrides to the defaults. */
export function functionSettings(config: EnvironmentConfig, name: FunctionName): FunctionSettings {
  return { ...config.functions.defaults, ...(config.functions.overrides[name] ?? {}) };
}

/** Whether `value` is one of the environment names. */
export function isEnvironmentName(value: unknown): value is EnvironmentName {
  return typeof value === 'string' && (ENVIRONMENTS as readonly string[]).includes(value);
}

/**
 * Read and validate `infra/config/<env>.json` (or `file` when given).
 * Throws an Error naming the file, the field and the fix.
 */
export function loadConfig(env: string, file = join(CONFIG_DIR, `${env}.json`)): EnvironmentConfig {
  if (!isEnvironmentName(env)) {
    throw new Error(`unknown environment '${env}': pass ENV=dev, ENV=qa or ENV=prod (cdk: -c env=<name>)`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`cannot read environment config ${file}: ${(err as Error).message}`);
  }
  const config = raw as EnvironmentConfig;
  validateConfig(config, env, file);
  return config;
}

/** Check the invariants the stack relies on; see {@link loadConfig}. */
export function validateConfig(config: EnvironmentConfig, env: EnvironmentName, file: string): void {
  const problems: string[] = [];
  const need = (ok: boolean, field: string, what: string) => {
    if (!ok) problems.push(`${field}: ${what}`);
  };
  const int = (v: unknown, lo: number, hi: number) => Number.isInteger(v) && (v as number) >= lo && (v as number) <= hi;
  const num = (v: unknown, lo: number, hi: number) => typeof v === 'number' && v >= lo && v <= hi;

  need(config.environment === env, 'environment', `must be "${env}" (the file name)`);
  need(/^\d{12}$/.test(config.account ?? ''), 'account', 'must be the 12-digit AWS account id');
  need(/^[a-z]{2}(-[a-z]+)+-\d$/.test(config.region ?? ''), 'region', 'must be an AWS region such as us-east-1');
  const net = config.network ?? ({} as EnvironmentConfig['network']);
  need(/^vpc-[0-9a-f]+$/.test(net.vpcId ?? ''), 'network.vpcId', 'must be an existing VPC id (vpc-...)');
  need(Array.isArray(net.privateSubnetIds) && net.privateSubnetIds.length >= 2
    && net.privateSubnetIds.every((s) => /^subnet-[0-9a-f]+$/.test(s)),
  'network.privateSubnetIds', 'must list at least two subnet ids (subnet-...) in different availability zones');
  need(Array.isArray(net.availabilityZones) && net.availabilityZones.length === net.privateSubnetIds?.length
    && new Set(net.availabilityZones).size === net.availabilityZones.length,
  'network.availabilityZones', 'must name one distinct zone per private subnet, in the same order');

  const db = config.database ?? ({} as EnvironmentConfig['database']);
  need(/^16\.\d+$/.test(db.engineVersion ?? ''), 'database.engineVersion', 'must be an Aurora PostgreSQL 16.x version such as "16.6"');
  need(/^[a-z_][a-z0-9_]*$/.test(db.databaseName ?? ''), 'database.databaseName', 'must be a lower-case PostgreSQL identifier');
  need(num(db.minAcu, 0, 256) && (db.minAcu * 2) % 1 === 0, 'database.minAcu', 'must be 0..256 in steps of 0.5');
  need(num(db.maxAcu, 1, 256) && (db.maxAcu * 2) % 1 === 0 && db.maxAcu >= db.minAcu, 'database.maxAcu', 'must be 1..256 in steps of 0.5 and >= minAcu');
  need(db.minAcu === 0 ? int(db.autoPauseMinutes, 5, 1440) : db.autoPauseMinutes === null,
    'database.autoPauseMinutes', 'must be 5..1440 when minAcu is 0 (auto-pause), null otherwise');
  need(int(db.backupRetentionDays, 1, 35), 'database.backupRetentionDays', 'must be 1..35');
  need(typeof db.deletionProtection === 'boolean', 'database.deletionProtection', 'must be true or false');
  need(typeof db.snapshotOnDelete === 'boolean', 'database.snapshotOnDelete', 'must be true or false');
  need(int(db.adminRotationDays, 1, 365), 'database.adminRotationDays', 'must be 1..365');
  need(int(db.roleRotationDays, 1, 365), 'database.roleRotationDays', 'must be 1..365');
  if (env === 'prod') {
    need(db.deletionProtection === true, 'database.deletionProtection', 'must be true in prod');
    need(db.snapshotOnDelete === true, 'database.snapshotOnDelete', 'must be true in prod');
  }

  const proxy = config.proxy ?? ({} as EnvironmentConfig['proxy']);
  need(typeof proxy.enabled === 'boolean', 'proxy.enabled', 'must be true or false');
  need(!(proxy.enabled && db.minAcu === 0), 'proxy.enabled',
    'RDS Proxy keeps connections open, so the cluster can never auto-pause: set database.minAcu >= 0.5 or disable the proxy');
  need(int(proxy.maxConnectionsPercent, 1, 100), 'proxy.maxConnectionsPercent', 'must be 1..100');
  need(int(proxy.maxIdleConnectionsPercent, 0, proxy.maxConnectionsPercent), 'proxy.maxIdleConnectionsPercent', 'must be 0..maxConnectionsPercent');
  need(int(proxy.borrowTimeoutSeconds, 1, 3600), 'proxy.borrowTimeoutSeconds', 'must be 1..3600');
  need(int(proxy.idleClientTimeoutMinutes, 1, 480), 'proxy.idleClientTimeoutMinutes', 'must be 1..480');

  const fns = config.functions ?? ({} as EnvironmentConfig['functions']);
  need(['x86_64', 'arm64', 'auto'].includes(fns.architecture), 'functions.architecture', 'must be "x86_64", "arm64" or "auto"');
  for (const key of Object.keys(fns.overrides ?? {})) {
    need((FUNCTION_NAMES as readonly string[]).includes(key), `functions.overrides.${key}`, `unknown function; use one of ${FUNCTION_NAMES.join(', ')}`);
  }
  for (const name of FUNCTION_NAMES) {
    const s = functionSettings(config, name);
    need(int(s.memoryMb, 128, 10240), `functions.${name}.memoryMb`, 'must be 128..10240');
    need(int(s.timeoutSeconds, 1, 900), `functions.${name}.timeoutSeconds`, 'must be 1..900 (Lambda maximum)');
    need(int(s.reservedConcurrency, 1, 1000), `functions.${name}.reservedConcurrency`, 'must be 1..1000');
  }

  const wf = config.workflow ?? ({} as EnvironmentConfig['workflow']);
  need(int(wf.maxConcurrency, 1, 10000), 'workflow.maxConcurrency', 'must be 1..10000');
  const copyChunk = fns.defaults ? functionSettings(config, 'copy-chunk') : undefined;
  need(copyChunk === undefined || wf.maxConcurrency <= copyChunk.reservedConcurrency * 2, 'workflow.maxConcurrency',
    'must not exceed twice copy-chunk reservedConcurrency (more children would only be throttled)');
  need(num(wf.toleratedFailurePercentage, 0, 100), 'workflow.toleratedFailurePercentage', 'must be 0..100');
  need(int(wf.executionTimeoutHours, 1, 24 * 365), 'workflow.executionTimeoutHours', 'must be a whole number of hours');

  const sch = config.schedule ?? ({} as EnvironmentConfig['schedule']);
  need(typeof sch.cron === 'string' && sch.cron.trim().split(/\s+/).length === 6, 'schedule.cron',
    'must have 6 fields: minutes hours day-of-month month day-of-week year, e.g. "0 2 * * ? *"');
  need(typeof sch.timeZone === 'string' && sch.timeZone.includes('/'), 'schedule.timeZone', 'must be an IANA zone such as America/New_York');
  need(typeof sch.allowTruncate === 'boolean', 'schedule.allowTruncate',
    'must be true (the nightly run reloads the tables marked truncate_onstart) or false (it refuses them once they hold rows)');

  const dr = config.dualRead ?? ({} as EnvironmentConfig['dualRead']);
  const isDate = (v: unknown) => typeof v === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(v) && !Number.isNaN(Date.parse(`${v}T00:00:00Z`))
    && new Date(`${v}T00:00:00Z`).toISOString().startsWith(v);
  need((dr.firstDate === null && dr.lastDate === null) || (isDate(dr.firstDate) && isDate(dr.lastDate) && dr.firstDate! <= dr.lastDate!),
    'dualRead.firstDate', 'firstDate and lastDate must both be null (no window) or both be dates YYYY-MM-DD with firstDate <= lastDate, e.g. "2027-01-04" and "2027-01-17"');
  need(/^[A-Za-z_][A-Za-z0-9_$]*$/.test(dr.snowflakeDatabase ?? ''), 'dualRead.snowflakeDatabase', 'must be a Snowflake identifier such as "CONFLICTREPORT"');
  need(/^[A-Za-z_][A-Za-z0-9_$]*$/.test(dr.snowflakeSchema ?? ''), 'dualRead.snowflakeSchema', 'must be a Snowflake identifier such as "PUBLIC"');

  need([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653]
    .includes(config.logs?.retentionDays), 'logs.retentionDays', 'must be a CloudWatch Logs retention value (e.g. 14, 30, 365)');
  need(int(config.storage?.manifestExpiryDays, 1, 3650), 'storage.manifestExpiryDays', 'must be 1..3650');
  need(int(config.storage?.accessLogExpiryDays, 1, 3650), 'storage.accessLogExpiryDays', 'must be 1..3650');

  const stg = config.staging ?? ({} as EnvironmentConfig['staging']);
  need(int(stg.expiryDays, 1, 3650), 'staging.expiryDays', 'must be 1..3650');
  need(typeof stg.prefix === 'string' && /^([a-z0-9][a-z0-9_-]*\/)+$/.test(stg.prefix), 'staging.prefix',
    'must be a key prefix of lower-case path segments ending in /, such as "unload/"');
  need(stg.snowflakeIamUserArn === null || /^arn:aws:iam::\d{12}:user\/[\w+=,.@/-]+$/.test(stg.snowflakeIamUserArn ?? ''),
    'staging.snowflakeIamUserArn', 'must be null or STORAGE_AWS_IAM_USER_ARN from DESC INTEGRATION (arn:aws:iam::<12 digits>:user/...)');
  need(stg.snowflakeExternalId === null || /^[\w+=,.@:/-]{2,1224}$/.test(stg.snowflakeExternalId ?? ''),
    'staging.snowflakeExternalId', 'must be null or STORAGE_AWS_EXTERNAL_ID from DESC INTEGRATION');
  need((stg.snowflakeIamUserArn === null) === (stg.snowflakeExternalId === null), 'staging.snowflakeExternalId',
    'set both snowflakeIamUserArn and snowflakeExternalId (from DESC INTEGRATION), or neither');

  const al = config.alarms ?? ({} as EnvironmentConfig['alarms']);
  need(/^https:\/\/.+\/$/.test(al.runbookBaseUrl ?? ''), 'alarms.runbookBaseUrl', 'must be an https URL ending in / (where ops/runbooks/ is browsable)');
  need(al.email === null || /^[^@\s]+@[^@\s]+$/.test(al.email ?? ''), 'alarms.email', 'must be null or an e-mail address');
  need(int(al.lambdaErrorsThreshold, 1, 10000), 'alarms.lambdaErrorsThreshold', 'must be >= 1');
  need(num(al.durationFractionOfTimeout, 0.1, 1), 'alarms.durationFractionOfTimeout', 'must be 0.1..1');
  need(num(al.auroraCpuPercent, 1, 100), 'alarms.auroraCpuPercent', 'must be 1..100');
  need(num(al.acuUtilizationPercent, 1, 100), 'alarms.acuUtilizationPercent', 'must be 1..100');
  need(int(al.maxConnections, 1, 100000), 'alarms.maxConnections', 'must be >= 1');
  need(int(al.replicaLagMilliseconds, 1, 3600000), 'alarms.replicaLagMilliseconds', 'must be >= 1');
  need(int(al.freeLocalStorageBytes, 1, 2 ** 50), 'alarms.freeLocalStorageBytes', 'must be >= 1');
  need(int(al.freshnessHours, 1, 168), 'alarms.freshnessHours', 'must be 1..168');
  need(int(al.reconcileFreshnessHours, 1, 24 * 366), 'alarms.reconcileFreshnessHours', 'must be 1..8784 hours (default 192: the 7-day rolling period plus a day)');
  need(int(al.conflictCreateMaxGapHours, 1, 168), 'alarms.conflictCreateMaxGapHours', 'must be 1..168 (CloudWatch evaluates at most 7 days)');

  const dd = config.datadog ?? ({} as EnvironmentConfig['datadog']);
  need(typeof dd.enabled === 'boolean', 'datadog.enabled', 'must be true or false');
  if (dd.enabled) {
    need(int(dd.extensionLayerVersion, 1, 1000), 'datadog.extensionLayerVersion', 'must be the Datadog-Extension layer version when datadog is enabled');
    need(/^arn:aws:secretsmanager:/.test(dd.apiKeySecretArn ?? ''), 'datadog.apiKeySecretArn', 'must be the ARN of the secret holding the Datadog API key');
  }
  need(dd.forwarderArn === null || /^arn:aws:lambda:/.test(dd.forwarderArn ?? ''), 'datadog.forwarderArn', 'must be null or a Lambda ARN');

  if (problems.length > 0) {
    throw new Error(`invalid environment config ${file}:\n  - ${problems.join('\n  - ')}`);
  }
}

/**
 * The DualRead state's window as the two timestamps the state machine's
 * Choice compares `$$.Execution.StartTime` with: from `firstDate` 00:00 UTC
 * (included) to the day after `lastDate` 00:00 UTC (excluded). No window:
 * both `1970-01-01T00:00:00Z`, which no execution falls in.
 */
export function dualReadWindow(dualRead: EnvironmentConfig['dualRead']): { start: string; end: string } {
  if (dualRead.firstDate === null || dualRead.lastDate === null) return { start: '1970-01-01T00:00:00Z', end: '1970-01-01T00:00:00Z' };
  const end = new Date(`${dualRead.lastDate}T00:00:00Z`);
  end.setUTCDate(end.getUTCDate() + 1);
  return { start: `${dualRead.firstDate}T00:00:00Z`, end: end.toISOString().replace('.000Z', 'Z') };
}
