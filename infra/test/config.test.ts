/**
 * Environment config validation and toolchain detection: bad settings fail
 * synth with a message naming the field; arm64 is chosen only when the
 * aarch64 target is installed.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Architecture } from 'aws-cdk-lib/aws-lambda';
import { CONFIG_DIR, ENVIRONMENTS, loadConfig } from '../lib/config.ts';
import { resolveArchitecture } from '../lib/toolchain.ts';
import { formatNumber, renderDefinition } from '../lib/asl.ts';
import { nightlyInput } from '../lib/constructs/workflow.ts';

const dir = mkdtempSync(join(tmpdir(), 'thaw-config-'));
function variant(env: string, change: (c: any) => void): string {
  const c = JSON.parse(readFileSync(join(CONFIG_DIR, `${env}.json`), 'utf8'));
  change(c);
  const file = join(dir, `${env}-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, JSON.stringify(c));
  return file;
}

describe('environment config', () => {
  for (const env of ENVIRONMENTS) it(`${env}.json is valid`, () => assert.equal(loadConfig(env).environment, env));

  it('keeps the cost switches of docs/operations.md §9: dev/qa scale to zero without proxy, prod has proxy and a warm floor with protection', () => {
    for (const env of ['dev', 'qa']) {
      const c = loadConfig(env);
      assert.equal(c.proxy.enabled, false);
      assert.equal(c.database.minAcu, 0);
    }
    const prod = loadConfig('prod');
    assert.equal(prod.proxy.enabled, true);
    assert.ok(prod.database.minAcu > 0);
    assert.equal(prod.database.deletionProtection, true);
    assert.ok(prod.database.maxAcu > loadConfig('qa').database.maxAcu);
    assert.ok(prod.logs.retentionDays > loadConfig('qa').logs.retentionDays);
  });

  it('rejects an RDS Proxy on an auto-pausing cluster, naming the field and the fix', () => {
    const file = variant('qa', (c) => { c.proxy.enabled = true; });
    assert.throws(() => loadConfig('qa', file), /proxy\.enabled: RDS Proxy keeps connections open.*minAcu >= 0\.5/s);
  });

  it('rejects prod without deletion protection and an unknown environment', () => {
    const file = variant('prod', (c) => { c.database.deletionProtection = false; });
    assert.throws(() => loadConfig('prod', file), /database\.deletionProtection: must be true in prod/);
    assert.throws(() => loadConfig('staging'), /unknown environment 'staging': pass ENV=dev, ENV=qa or ENV=prod/);
  });

  it('rejects a non-16 engine, a five-field cron and an override of an unknown function', () => {
    const file = variant('dev', (c) => {
      c.database.engineVersion = '15.4';
      c.schedule.cron = '0 2 * * *';
      c.functions.overrides.copychunk = { memoryMb: 256 };
    });
    assert.throws(() => loadConfig('dev', file), (err: Error) => /database\.engineVersion/.test(err.message)
      && /schedule\.cron: must have 6 fields/.test(err.message) && /functions\.overrides\.copychunk: unknown function/.test(err.message));
  });
});

describe('nightly schedule config', () => {
  it('requires schedule.allowTruncate as a boolean and passes it to the nightly input', () => {
    for (const change of [(c: any) => { delete c.schedule.allowTruncate; }, (c: any) => { c.schedule.allowTruncate = 'yes'; }]) {
      assert.throws(() => loadConfig('qa', variant('qa', change)), /schedule\.allowTruncate: must be true \(the nightly run reloads the tables marked truncate_onstart\) or false/);
    }
    assert.equal(loadConfig('qa', variant('qa', (c) => { c.schedule.allowTruncate = false; })).schedule.allowTruncate, false);
    assert.deepEqual(nightlyInput(false), { mode: 'incremental', allow_truncate: false });
  });
});

describe('dual-read window config', () => {
  it('rejects half a window, a reversed one and a non-date, naming the field and an example', () => {
    for (const change of [
      (c: any) => { c.dualRead.firstDate = '2027-01-04'; },
      (c: any) => { c.dualRead.firstDate = '2027-01-18'; c.dualRead.lastDate = '2027-01-04'; },
      (c: any) => { c.dualRead.firstDate = '2027-02-30'; c.dualRead.lastDate = '2027-03-04'; },
    ]) {
      assert.throws(() => loadConfig('qa', variant('qa', change)), /dualRead\.firstDate: firstDate and lastDate must both be null \(no window\) or both be dates YYYY-MM-DD/);
    }
    assert.throws(() => loadConfig('qa', variant('qa', (c) => { c.alarms.reconcileFreshnessHours = 0; })), /alarms\.reconcileFreshnessHours: must be 1\.\.8784/);
    const ok = loadConfig('qa', variant('qa', (c) => { c.dualRead.firstDate = '2027-01-04'; c.dualRead.lastDate = '2027-01-04'; }));
    assert.equal(ok.dualRead.lastDate, '2027-01-04', 'a one-day window is a window');
  });
});

describe('toolchain detection', () => {
  it('uses arm64 for "auto" only when the aarch64 target is installed', () => {
    assert.equal(resolveArchitecture('auto', true, () => true), Architecture.ARM_64);
    assert.equal(resolveArchitecture('auto', true, () => false), Architecture.X86_64);
    assert.equal(resolveArchitecture('x86_64', true, () => true), Architecture.X86_64);
  });
  it('refuses an explicit arm64 build without the target, with the rustup command to fix it', () => {
    assert.throws(() => resolveArchitecture('arm64', true, () => false), /rustup target add aarch64-unknown-linux-gnu/);
    assert.equal(resolveArchitecture('arm64', false, () => false), Architecture.ARM_64, 'templates-only synth needs no toolchain');
  });
});

describe('ASL rendering', () => {
  it('writes ToleratedFailurePercentage as a float and other numbers as integers', () => {
    assert.equal(formatNumber('ToleratedFailurePercentage', 5), '5.0');
    assert.equal(formatNumber('ToleratedFailurePercentage', 2.5), '2.5');
    assert.equal(formatNumber('MaxConcurrency', 16), '16');
  });
  it('names a placeholder that has no value', () => {
    assert.throws(() => renderDefinition('{"a": "${Missing}"}', {}), /no value for placeholder\(s\) Missing/);
  });
  it('refuses a numeric placeholder embedded in a longer string', () => {
    assert.throws(() => renderDefinition('{"a": "x${N}"}', { N: 1 }), /must be a whole JSON string value/);
  });
});
