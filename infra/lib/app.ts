/**
 * Builds one environment's stack into an App; shared by `bin/thaw.ts` and the
 * tests so both synthesize exactly the same thing.
 */
import { App } from 'aws-cdk-lib';
import { EnvironmentConfig } from './config.ts';
import { ThawStack } from './thaw-stack.ts';
import { cargoLambdaAvailable, resolveArchitecture } from './toolchain.ts';

/** Options of {@link buildStack}. */
export interface BuildOptions {
  repoRoot: string;
  deployId?: string;
  /** `x86_64` / `arm64` / `auto`, overriding functions.architecture. */
  architectureOverride?: string;
  /** Arch detector (tests inject one). */
  detectAarch64?: () => boolean;
}

/** Name of the environment's stack. */
export function stackName(config: EnvironmentConfig): string {
  return `Thaw-${config.environment}`;
}

/**
 * Whether the CLI asked to bundle assets of `name`: the `aws:cdk:bundling-stacks`
 * context (default `**`) holds stack names or glob patterns; `[]` means no
 * bundling (how the tests synthesize without a release build).
 */
export function bundlingRequested(app: App, name: string): boolean {
  const patterns: unknown = app.node.tryGetContext('aws:cdk:bundling-stacks') ?? ['**'];
  if (!Array.isArray(patterns)) return true;
  return patterns.some((p) => {
    const re = new RegExp(`^${String(p).replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*+/g, '.*')}$`);
    return re.test(name);
  });
}

/**
 * Add the `Thaw-<env>` stack to `app`. When the app bundles (the normal
 * synth), checks first that `cargo lambda` runs, so a missing toolchain is a
 * clear error instead of a fallback to Docker.
 */
export function buildStack(app: App, config: EnvironmentConfig, options: BuildOptions): ThawStack {
  const bundling = bundlingRequested(app, stackName(config));
  if (bundling && !cargoLambdaAvailable()) {
    throw new Error('`cargo lambda` is not on the PATH: run `make synth ENV=<env>` (it installs cargo-lambda into the infra venv), or `pip install cargo-lambda`');
  }
  const architecture = resolveArchitecture(options.architectureOverride ?? config.functions.architecture, bundling, options.detectAarch64);
  return new ThawStack(app, stackName(config), {
    env: { account: config.account, region: config.region },
    description: `thaw ${config.environment}: Snowflake to Aurora PostgreSQL sync, conflict detection and reconciliation`,
    config,
    architecture,
    repoRoot: options.repoRoot,
    deployId: options.deployId,
    terminationProtection: config.database.deletionProtection,
    tags: { project: 'thaw', environment: config.environment },
  });
}
