/**
 * Build every Lambda binary of an environment in ONE `cargo lambda build` before `cdk synth`.
 * Usage: node --import tsx scripts/build-lambdas.ts <env>
 *
 * Each cargo-lambda-cdk RustFunction bundles with its own
 * `cargo lambda build --release --<arch> --bin <name>`, one after the other. They share the
 * compiled dependencies (one CARGO_TARGET_DIR), but each still compiles and LTO-links its binary
 * alone, on one core at a time. Building all binaries in one cargo invocation first (same
 * profile, target and flags, so the same artifacts) lets cargo link them in parallel; the
 * RustFunction builds that follow find them fresh and only copy them into the assets.
 * The architecture is resolved exactly as the stack resolves it (lib/toolchain.ts).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { Architecture } from 'aws-cdk-lib/aws-lambda';
import { FUNCTION_NAMES, loadConfig } from '../lib/config.ts';
import { resolveArchitecture } from '../lib/toolchain.ts';

const env = process.argv[2];
if (!env) throw new Error('usage: build-lambdas.ts <env>');
const config = loadConfig(env);
const architecture = resolveArchitecture(config.functions.architecture, true);
const args = ['lambda', 'build', '--release', architecture === Architecture.ARM_64 ? '--arm64' : '--x86-64',
  ...FUNCTION_NAMES.flatMap((name) => ['--bin', name])];
process.stderr.write(`building ${FUNCTION_NAMES.length} Lambdas for ${architecture.name}: cargo ${args.join(' ')}\n`);
const built = spawnSync('cargo', args, { cwd: join(import.meta.dirname, '..', '..'), stdio: ['ignore', process.stderr, 'inherit'] });
process.exit(built.status ?? 1);
