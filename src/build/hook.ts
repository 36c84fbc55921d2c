// The post-build hook relonix build gives Nix. Nix runs it after every local build, holding its
// build loop until it exits, and a hook that fails stops every further build; so it is a few lines
// of sh (no node start) that append the derivation to the queue, sync it, and always succeed.
import { writeFileAtomic } from '../util/fs.ts';
import { shQuote } from '../util/shell.ts';
import type { QueueFiles } from './queue.ts';

/**
 * Pure. `sync FILE` is an fsync of that file with coreutils (8.24 on) and busybox; where it is
 * missing the line is still written, only not synced. Signals are ignored so that a stop of the
 * whole process group cannot leave an output registered but unqueued. The user's own hook, when
 * they have one, runs next, as they configured it.
 */
export function hookScript(queueFile: string, userHook?: string): string {
  return [
    '#!/bin/sh',
    '# relonix build: queue the derivation Nix just built for the uploader (Nix 2.8 leaves OUT_PATHS',
    '# empty; the outputs are read from the derivation). Never fails: a failing hook stops the build.',
    "trap '' HUP INT TERM",
    `printf '%s\\n' "$DRV_PATH" >> ${shQuote(queueFile)} 2>/dev/null`,
    `sync ${shQuote(queueFile)} 2>/dev/null`,
    ...(userHook ? ['trap - HUP INT TERM', `exec ${shQuote(userHook)} "$@"`] : ['exit 0']),
    '',
  ].join('\n');
}

export async function writeHook(q: QueueFiles, userHook?: string): Promise<string> {
  await writeFileAtomic(q.hook, hookScript(q.queue, userHook), 0o755);
  return q.hook;
}
