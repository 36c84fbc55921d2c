// The stages of a bootstrap, by where the Nix comes from: a tarball (relocated, then optionally
// replaced by the cache's Nix built for the prefix), or the caches alone.
import type { BootstrapContext, Stage } from '../stage.ts';
import { cacheNixStage } from './cache-nix.ts';
import { configureStage } from './configure.ts';
import { fetchStage } from './fetch.ts';
import { preflightStage } from './preflight.ts';
import { registerStage } from './register.ts';
import { relocateStage } from './relocate.ts';
import { restoreStage } from './restore.ts';
import { unpackStage } from './unpack.ts';
import { verifyStage } from './verify.ts';

export function planStages(ctx: BootstrapContext): Stage[] {
  if (!ctx.tarball) return [preflightStage, configureStage, restoreStage, verifyStage];
  const stages: Stage[] = [preflightStage, fetchStage, unpackStage, relocateStage, configureStage, registerStage, verifyStage];
  if (ctx.caches.length > 0) stages.push(cacheNixStage);
  return stages;
}

/**
 * Starts loading what the later stages of a tarball bootstrap import when they run; preflight mostly
 * waits on a probe process and a HEAD meanwhile.
 */
export function preloadTarballStages(): void {
  void Promise.all([import('../untar.ts'), import('../tarball.ts'), import('../../elf/index.ts'), import('../../store/relocate-stream.ts')]).catch(() => {});
}
