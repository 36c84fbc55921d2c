// A container whose PID 1 does not reap: a bootstrap killed with SIGKILL after its parent died stays
// a zombie, and kill(pid, 0) still succeeds on it. Each run here starts under a small subreaper that
// never waits (as such a PID 1), its parent exits at once, and the run is killed in one stage after
// another; each later run must see through the zombie's lock, and the last one completes and verifies.

import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before } from 'node:test';
import { asUser, eventOf, onLines, type RelonixEvent, relonix } from '../helpers/cli.ts';
import { mirrorFor } from '../helpers/mirror.ts';
import { forEachNix } from '../helpers/nixes.ts';
import { prefixFor, removePrefix } from '../helpers/paths.ts';
import { requireTool } from '../helpers/tools.ts';
import { waitUntil } from '../helpers/wait.ts';

requireTool('gcc', 'gcc');

// Runs argv as a grandchild whose parent has exited, so that it is re-parented to this process,
// which never reaps: killed, it stays a zombie. Prints the grandchild's pid first.
const SUBREAPER_C = `
#include <stdio.h>
#include <sys/prctl.h>
#include <unistd.h>
int main(int argc, char **argv) {
  if (argc < 2 || prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) { perror("subreaper"); return 2; }
  int go[2];
  if (pipe(go) != 0) return 2;
  if (fork() == 0) {
    pid_t kid = fork();
    if (kid == 0) {
      char c;
      close(go[1]);
      if (read(go[0], &c, 1) < 0) _exit(2); /* until the pid is out: it must come first */
      close(go[0]);
      execvp(argv[1], argv + 1);
      perror("execvp");
      _exit(127);
    }
    printf("%d\\n", (int)kid);
    fflush(stdout);
    close(go[1]);
    _exit(0);
  }
  close(go[0]);
  close(go[1]);
  for (;;) pause();
}
`;

let top: string;
let subreaper: string;
const reapers: ChildProcess[] = [];

before(async () => {
  top = path.dirname(await prefixFor(undefined, 'zombie'));
  await fs.writeFile(path.join(top, 'subreaper.c'), SUBREAPER_C);
  subreaper = path.join(top, 'subreaper');
  execFileSync('gcc', ['-O1', '-o', subreaper, path.join(top, 'subreaper.c')]);
});

after(async () => {
  // the subreapers hold the zombies; once they are gone, whoever reaps for this container does
  for (const r of reapers) r.kill('SIGKILL');
  if (top) await removePrefix(top);
});

/** State and parent pid from /proc/PID/stat, read after the last ')' as the kernel writes it. */
function procStat(pid: number): { state: string; ppid: number } {
  const text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: f[0]!, ppid: Number(f[1]) };
}

interface ZombieRun {
  pid: number;
  struck: boolean;
  events: RelonixEvent[];
}

/**
 * `relonix bootstrap --json` from `url` under a fresh subreaper, killed `delayMs` after `stage` starts (if
 * given). Resolves once the run is a zombie: killed, or ended on its own (nobody reaps it either way).
 */
async function zombieBootstrap(prefix: string, url: string, strike?: { stage: string; delayMs: number }): Promise<ZombieRun> {
  const { cmd, argv } = asUser(undefined, ['bootstrap', '--prefix', prefix, '--url', url, '--json'], [], [subreaper]);
  const r = spawn(cmd, argv, { cwd: '/', env: { PATH: '/usr/bin:/bin' }, stdio: ['ignore', 'pipe', 'pipe'] });
  reapers.push(r);
  r.stderr!.resume();
  const run: ZombieRun = { pid: 0, struck: false, events: [] };
  onLines(r.stdout!, (line) => {
    if (!run.pid) {
      run.pid = Number(line);
      return;
    }
    const ev = eventOf(line);
    if (!ev) return;
    run.events.push(ev);
    if (strike && !run.struck && ev.event === 'stage' && ev.stage === strike.stage && ev.status === 'start') {
      run.struck = true;
      setTimeout(() => {
        // its parent is gone: the subreaper has it, and will never wait for it
        if (procStat(run.pid).ppid === r.pid) process.kill(run.pid, 'SIGKILL');
      }, strike.delayMs);
    }
  });
  await waitUntil('the run started', () => run.pid > 0, { every: 20 });
  await waitUntil(`pid ${run.pid} is a zombie`, () => procStat(run.pid).state === 'Z', { every: 20 });
  r.stdout!.destroy();
  return run;
}

/** How long each stage takes here: one bootstrap under a subreaper too, undisturbed. */
async function referenceStageMs(prefix: string, url: string): Promise<Record<string, number>> {
  const run = await zombieBootstrap(prefix, url);
  assert.equal(run.events.at(-1)?.event, 'done', JSON.stringify(run.events.at(-1)));
  await removePrefix(prefix);
  const ms: Record<string, number> = {};
  for (const e of run.events as (RelonixEvent & { ms?: number })[]) if (e.event === 'stage' && e.status === 'done') ms[e.stage!] = e.ms ?? 0;
  return ms;
}

forEachNix(({ fixture, test }) => {
  const mirror = mirrorFor(fixture);

  test("SIGKILL in every stage under a PID 1 that does not reap: each re-run takes over the zombie's lock, and the last completes and verifies", {
    timeout: 600_000,
  }, async () => {
    const prefix = path.join(top, `nix-${fixture}`);
    const stageMs = await referenceStageMs(path.join(top, `reference-${fixture}`), mirror.url);
    const lockFile = path.join(prefix, 'var/relonix/lock');
    const zombies: string[] = [];
    for (const [stage, fraction] of [
      ['fetch', 0.3],
      ['unpack', 0.4],
      ['relocate', 0.4],
      ['configure', 0],
      ['register', 0.3],
      ['verify', 0.3],
    ] as const) {
      const run = await zombieBootstrap(prefix, mirror.url, { stage, delayMs: Math.round(fraction * (stageMs[stage] ?? 0)) });
      const last = run.events.at(-1);
      assert.ok(
        run.events.some((e) => e.event === 'stage' && e.status === 'start'),
        `the run in ${stage} got past the lock: ${JSON.stringify(last)}`,
      );
      assert.notEqual(last?.event, 'error', `the run in ${stage} failed: ${JSON.stringify(last)}`);
      assert.equal(procStat(run.pid).state, 'Z');
      assert.doesNotThrow(() => process.kill(run.pid, 0), 'kill(pid, 0) succeeds on a zombie');
      if (last?.event === 'done') continue; // it finished before the blow: nothing of it is left
      zombies.push(stage);
      const owner = JSON.parse(await fs.readFile(lockFile, 'utf8')) as { pid: number };
      assert.equal(owner.pid, run.pid, 'the lock names the zombie');
    }
    console.log(`# zombies left holding the lock in: ${zombies.join(', ')}`);
    assert.ok(zombies.length >= 4, `at least four runs died mid-stage (${zombies.join(', ')})`);

    // a plain run completes; the store verifies with Nix's own hash check, and it builds
    const inPrefix = ['run', '--prefix', prefix, '--'];
    for (const args of [
      ['bootstrap', '--prefix', prefix, '--url', mirror.url],
      [...inPrefix, 'nix-store', '--verify', '--check-contents'],
      [...inPrefix, 'nix-build', '--no-out-link', path.join(prefix, 'var/relonix/check.nix')],
    ]) {
      const r = await relonix(undefined, args);
      assert.equal(r.code, 0, `relonix ${args.join(' ')}: ${r.stdout}\n${r.stderr}`);
      assert.doesNotMatch(r.stderr, /modified|corrupt|invalid/i);
    }
    await assert.rejects(fs.access(lockFile), 'the lock is released');
  });
});
