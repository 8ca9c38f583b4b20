/**
 * Facts about the local Rust toolchain that decide how the Lambdas are built.
 * Detected, never assumed: arm64 is used only when the aarch64 standard
 * library is installed, and bundling needs `cargo lambda` on the PATH.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Architecture } from 'aws-cdk-lib/aws-lambda';

/** The Rust target cargo-lambda builds for arm64 Lambdas. */
export const AARCH64_TARGET = 'aarch64-unknown-linux-gnu';

/** Whether the aarch64 Linux standard library is installed (rustup, or the rustc sysroot). */
export function aarch64TargetInstalled(): boolean {
  const rustup = spawnSync('rustup', ['target', 'list', '--installed'], { encoding: 'utf8' });
  if (rustup.status === 0) return rustup.stdout.split(/\r?\n/).includes(AARCH64_TARGET);
  const sysroot = spawnSync('rustc', ['--print', 'sysroot'], { encoding: 'utf8' });
  return sysroot.status === 0 && existsSync(join(sysroot.stdout.trim(), 'lib', 'rustlib', AARCH64_TARGET));
}

/** Whether `cargo lambda --version` runs (local bundling without Docker). */
export function cargoLambdaAvailable(): boolean {
  const probe = spawnSync('cargo', ['lambda', '--version'], { encoding: 'utf8' });
  return probe.status === 0;
}

/**
 * The Lambda architecture for a config setting (`x86_64`, `arm64`, `auto`).
 * `auto` means arm64 when the aarch64 target is installed, x86_64 otherwise.
 * An explicit `arm64` without the target throws only when `bundling` is true
 * (tests that skip bundling can still synthesize arm64 templates).
 */
export function resolveArchitecture(setting: string, bundling: boolean, detect: () => boolean = aarch64TargetInstalled): Architecture {
  switch (setting) {
    case 'x86_64':
      return Architecture.X86_64;
    case 'arm64':
      if (bundling && !detect()) {
        throw new Error(`functions.architecture is "arm64" but the Rust target ${AARCH64_TARGET} is not installed: run \`rustup target add ${AARCH64_TARGET}\` or set "auto"/"x86_64" in infra/config/<env>.json`);
      }
      return Architecture.ARM_64;
    case 'auto':
      return detect() ? Architecture.ARM_64 : Architecture.X86_64;
    default:
      throw new Error(`functions.architecture "${setting}" is not one of x86_64, arm64, auto`);
  }
}
