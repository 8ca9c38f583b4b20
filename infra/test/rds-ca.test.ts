/**
 * The RDS CA bundle layer: every thaw Lambda attaches it and is told to verify
 * PostgreSQL's certificate against it, and the file the layer ships parses as
 * X.509 CA certificates (RDS CAs plus the Amazon roots of RDS Proxy).
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ENVIRONMENTS, FUNCTION_NAMES, loadConfig } from '../lib/config.ts';
import { RDS_CA_BUNDLE_PATH, rdsCaBundlePem } from '../lib/rds-ca.ts';
import { synth } from './support.ts';

type Resource = { Type: string; Properties: Record<string, any> };

/** The PEM blocks of `text`, each parsed by Node's X.509 parser. */
function parseCertificates(text: string): X509Certificate[] {
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((pem) => new X509Certificate(pem));
}

describe('RDS CA bundle', () => {
  it('holds only parseable CA certificates, including the RDS Proxy root Amazon Root CA 1', () => {
    const pem = rdsCaBundlePem();
    const certificates = parseCertificates(pem);
    assert.equal(certificates.length, pem.split('-----BEGIN CERTIFICATE-----').length - 1, 'every BEGIN CERTIFICATE block parses');
    assert.ok(certificates.length >= 1);
    assert.ok(certificates.every((c) => c.ca), 'every certificate is a CA');
    assert.ok(certificates.some((c) => /^CN=Amazon Root CA 1$/m.test(c.subject)), 'Amazon Root CA 1 (RDS Proxy) present');
  });
});

for (const env of ENVIRONMENTS) {
  const { region } = loadConfig(env);
  describe(`${env}: RDS CA bundle on the Lambdas`, () => {
    const { app, template } = synth(env);
    const layers = template.findResources('AWS::Lambda::LayerVersion') as Record<string, Resource>;
    const layerIds = Object.keys(layers).filter((id) => layers[id].Properties.LayerName === `thaw-${env}-rds-ca`);
    const thawFunctions = () => FUNCTION_NAMES.map((name) => {
      const fn = Object.values(template.findResources('AWS::Lambda::Function') as Record<string, Resource>)
        .find((f) => f.Properties.FunctionName === `thaw-${env}-${name}`);
      assert.ok(fn, `function thaw-${env}-${name} exists`);
      return { name, props: fn.Properties };
    });

    it('publishes one layer for the bundle', () => {
      assert.equal(layerIds.length, 1);
    });

    it('attaches the layer to every thaw function and sets THAW_PG_CA_FILE and THAW_PG_SSLMODE=verify-full', () => {
      for (const { name, props } of thawFunctions()) {
        assert.ok((props.Layers ?? []).some((l: unknown) => JSON.stringify(l) === JSON.stringify({ Ref: layerIds[0] })), `${name} has the layer`);
        assert.equal(props.Environment.Variables.THAW_PG_CA_FILE, RDS_CA_BUNDLE_PATH, name);
        assert.equal(props.Environment.Variables.THAW_PG_SSLMODE, 'verify-full', name);
      }
      assert.equal(RDS_CA_BUNDLE_PATH, '/opt/rds-ca/global-bundle.pem');
    });

    it('ships the bundle in the layer asset at the path the functions read', () => {
      const key = layers[layerIds[0]].Properties.Content.S3Key as string;
      assert.match(key, /^[0-9a-f]{64}\.zip$/);
      const staged = join(app.outdir, `asset.${key.replace(/\.zip$/, '')}`);
      const inLayer = join(staged, RDS_CA_BUNDLE_PATH.replace(/^\/opt\//, ''));
      assert.ok(existsSync(inLayer), `${inLayer} staged`);
      const text = readFileSync(inLayer, 'utf8');
      assert.equal(text, rdsCaBundlePem());
      const subjects = parseCertificates(text).map((c) => c.subject);
      assert.ok(subjects.some((s) => new RegExp(`^CN=Amazon RDS ${region} Root CA RSA2048 G1$`, 'm').test(s)),
        `the ${region} rds-ca-rsa2048-g1 root (Aurora's default server CA) is in the layer`);
    });
  });
}
