// nix-env -iA of a closure that upstream built, in a relonix prefix (every path translated on demand
// by the prefix's translator) against Debian's Nix as root installing the same closure at /nix/store
// from the same upstream, in one run. The upstream: Debian's Nix as root builds a generated closure
// (PATHS packages of about 1.3 MB each, every one naming others' store paths) and serves it with xz,
// signed, over loopback HTTP. The reference runs in a private mount namespace whose /nix is an empty
// directory of its own (bind-mounted), so it neither sees the upstream's copies nor deletes anything
// real. Both, in RELONIX_BENCH_ROUNDS rounds (3) that alternate the sides: a first install from
// nothing, then after uninstalling and garbage collection a second one (the translator serves it from
// its file cache; Nix downloads it again); the ratios are of the medians. Targets: <= 1.5x, <= 1.1x.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureFixture } from '../src/demo/mirror.ts';
import { serveDirectory } from '../src/net/serve.ts';
import { removeTree } from '../src/util/fs.ts';
import { benchFixture } from './fixture.ts';
import { procStatFields, watchLoad } from './load.ts';
import { median } from './stats.ts';

const PATHS = Number(process.env.RELONIX_BENCH_PATHS ?? 44);
const ROUNDS = Number(process.env.RELONIX_BENCH_ROUNDS ?? 3);
const RELONIX = path.resolve('bin', 'relonix.js');
const HOST_NIX = 'sandbox = false\nbuild-users-group =\nsubstituters =\nexperimental-features = nix-command';

/** The closure: a chain with jumps back, each package 1 MiB of noise and text naming its inputs. */
function expression(): string {
  const lines = ['let', '  sys = builtins.currentSystem;'];
  for (let i = 0; i < PATHS; i++) {
    const deps = [...new Set([i - 1, Math.floor(i / 2), Math.floor(i / 3)].filter((j) => j >= 0 && j < i))];
    const refs = deps.map((j) => `\${p${j}}`).join(' ');
    lines.push(`  p${i} = derivation { name = "bench-pkg-${i}"; system = sys; builder = "/bin/sh"; PATH = "/usr/bin:/bin"; args = [ "-c" ''
    mkdir -p $out/bin $out/share
    head -c 1048576 /dev/urandom > $out/share/noise
    for d in ${refs}; do printf '%s\\n' "$d" >> $out/share/inputs; done
    seq 1 40000 | sed "s|^|$out |" > $out/share/lines
    printf '#!/bin/sh\\necho %s ${refs}\\n' "$out" > $out/bin/pkg-${i}
    chmod +x $out/bin/pkg-${i}
  '' ]; };`);
  }
  lines.push(`  all = derivation { name = "bench-all"; system = sys; builder = "/bin/sh"; PATH = "/usr/bin:/bin"; args = [ "-c" ''
    mkdir -p $out/share; for p in ${Array.from({ length: PATHS }, (_, i) => `\${p${i}}`).join(' ')}; do echo $p >> $out/share/all; done
  '' ]; };`);
  lines.push('in { inherit all; }');
  return lines.join('\n');
}

function hostNix(home: string, cmd: string, args: string[]): string {
  return execFileSync(cmd, args, {
    env: { PATH: '/usr/bin:/bin', HOME: home, NIX_CONFIG: HOST_NIX },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  }).trim();
}

/** Runs a command to its end without blocking this process (it serves the upstream meanwhile). */
function run(cmd: string, args: string[], env?: NodeJS.ProcessEnv): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('close', (code) => resolve({ code, out }));
  });
}

/** Runs `sh -c script`, timed; throws with its output when it fails or builds anything. */
async function timedSh(script: string, env: NodeJS.ProcessEnv): Promise<number> {
  const t0 = performance.now();
  const r = await run('sh', ['-c', script], env);
  const s = (performance.now() - t0) / 1000;
  if (r.code !== 0) throw new Error(`${script}\n${r.out}`);
  if (/^building '(?!.*-user-environment\.drv)/m.test(r.out)) throw new Error(`something was built:\n${r.out}`);
  return s;
}

/** The pid of the prefix's running translator, as its server file names it; '' when there is none. */
async function translatorPid(prefix: string): Promise<string> {
  return (await fs.readFile(path.join(prefix, 'var/relonix/translator/server'), 'utf8').catch(() => '')).split(' ')[0]!;
}

/** The running translator's pid and the CPU ticks it and the programs it reaped ran, if one runs. */
async function translatorTicks(prefix: string): Promise<{ pid: string; ticks: number } | undefined> {
  const pid = await translatorPid(prefix);
  const f = pid ? procStatFields(pid) : [];
  // utime stime cutime cstime: fields 14-17, 12-15 after the name
  return f.length ? { pid, ticks: f[11]! + f[12]! + f[13]! + f[14]! } : undefined;
}

/** The translator's CPU time, its programs' (reaped, and those of the shells it keeps to start them), and its minor page faults so far. */
async function translatorUse(prefix: string): Promise<{ cpu: number; children: number; minflt: number; peakMb: number }> {
  const pid = await translatorPid(prefix);
  if (!pid) throw new Error(`no translator runs for ${prefix}`);
  // fields 4, 10, 14-17 of the line (1, 7, 11-14 after the name): ppid, minflt, utime, stime, cutime, cstime, in clock ticks of 1/100 s
  const f = procStatFields(pid);
  let children = f[13]! + f[14]!;
  for (const p of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    const c = procStatFields(p);
    if (String(c[1]) === pid) children += c[11]! + c[12]! + c[13]! + c[14]!;
  }
  // its peak resident memory: each program it starts copies its page tables first
  const status = await fs.readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const peakMb = Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1] ?? Number.NaN) / 1024;
  return { cpu: (f[11]! + f[12]!) / 100, children: children / 100, minflt: f[7]!, peakMb };
}

/** An 8-byte prefix (/tmp/bNN), whose store dir /tmp/bNN/s is as long as /nix/store. */
async function shortPrefix(): Promise<string> {
  for (let n = 10; n < 100; n++) {
    const p = `/tmp/b${n}`;
    try {
      await fs.mkdir(p);
      return p;
    } catch {
      // taken
    }
  }
  throw new Error('no free /tmp/bNN');
}

const work = await fs.mkdtemp(path.join(os.tmpdir(), 'relonix-bench-substitute-'));
const home = path.join(work, 'home');
await fs.mkdir(home);
let prefix: string | undefined;
let built: string[] = [];
const servers: { close(): Promise<void> }[] = [];
try {
  const expr = path.join(work, 'expr.nix');
  await fs.writeFile(expr, expression());
  const all = hostNix(home, 'nix-build', ['--no-out-link', expr, '-A', 'all']);
  built = hostNix(home, 'nix-store', ['-qR', all]).split('\n');
  hostNix(home, 'nix-store', ['--generate-binary-cache-key', 'bench-up-1', path.join(work, 'up.secret'), path.join(work, 'up.public')]);
  const up = path.join(work, 'up');
  hostNix(home, 'nix', ['copy', '--to', `file://${up}?compression=xz&secret-key=${path.join(work, 'up.secret')}`, all]);
  const key = (await fs.readFile(path.join(work, 'up.public'), 'utf8')).trim();
  const narBytes = (await Promise.all(built.map((p) => hostNix(home, 'nix-store', ['-q', '--size', p])))).reduce((a, b) => a + Number(b), 0);
  const upstream = await serveDirectory(up);
  servers.push(upstream);

  const fx = await ensureFixture({ name: benchFixture() });
  const mirror = await serveDirectory(path.dirname(fx.tarball));
  servers.push(mirror);
  prefix = await shortPrefix();
  const boot = await run(process.execPath, [
    RELONIX,
    'bootstrap',
    '--prefix',
    prefix,
    '--url',
    `${mirror.url}/${path.basename(fx.tarball)}`,
    '--upstream',
    upstream.url,
    '--upstream-key',
    key,
  ]);
  if (boot.code !== 0) throw new Error(`bootstrap failed:\n${boot.out}`);
  const ours = { PATH: `${prefix}/bin:/usr/bin:/bin`, HOME: home };
  const profile = process.env.RELONIX_BENCH_PROFILE;
  if (profile) {
    // the translator started ahead, under node's profiler (it writes the profile when it stops): its start-up is not timed then
    const started = await run(process.execPath, ['--cpu-prof', `--cpu-prof-dir=${profile}`, RELONIX, 'translator', 'start', '--prefix', prefix], ours);
    if (started.code !== 0) throw new Error(`translator start failed:\n${started.out}`);
  }
  // the reference: Debian's Nix as root, a /nix of its own (one per round), the same upstream
  const inNamespace = (nix: string, script: string) => `unshare --mount --propagation private sh -c ${JSON.stringify(`mount --bind ${nix} /nix && ${script}`)}`;
  const refEnv = (refHome: string) => ({
    PATH: '/usr/bin:/bin',
    HOME: refHome,
    NIX_CONFIG: `sandbox = false\nbuild-users-group =\nsubstituters = ${upstream.url}\ntrusted-public-keys = ${key}\nnarinfo-cache-negative-ttl = 0`,
  });
  const loadWatch = watchLoad();
  // the translator runs detached: its work (and its xz's) is the bench's own, not other processes'
  const counted = new Map<string, number>();
  const countTranslator = async (into = true) => {
    const t = await translatorTicks(prefix!);
    if (t && into) loadWatch.detached(t.ticks - (counted.get(t.pid) ?? 0));
    if (t) counted.set(t.pid, t.ticks);
  };
  await countTranslator(false);
  const stopTranslator = async () => {
    await countTranslator();
    spawnSync(process.execPath, [RELONIX, 'translator', 'stop', '--prefix', prefix!], { stdio: 'ignore' });
  };
  const times = { oursFirst: [] as number[], oursSecond: [] as number[], refFirst: [] as number[], refSecond: [] as number[] };
  let use: Awaited<ReturnType<typeof translatorUse>> | undefined;
  // rounds alternate the two sides, each a first install from nothing and a second after garbage
  // collection: the reference alone moved 0.6-1.2 s between single runs on a quiet machine
  for (let round = 0; round < ROUNDS; round++) {
    if (round > 0) {
      // ours from nothing again: no store paths, no kept translations, no narinfos in Nix's disk cache, no translator
      await timedSh('nix-env -e bench-all && nix-collect-garbage -d >/dev/null', ours);
      await stopTranslator();
      await removeTree(path.join(prefix, 'var/relonix/translator/cache'));
      await removeTree(path.join(home, '.cache'));
    } else if (!profile) await stopTranslator();
    times.oursFirst.push(await timedSh(`nix-env -f ${expr} -iA all`, ours));
    use ??= await translatorUse(prefix);
    await timedSh('nix-env -e bench-all && nix-collect-garbage -d >/dev/null', ours);
    times.oursSecond.push(await timedSh(`nix-env -f ${expr} -iA all`, ours));

    const refNix = path.join(work, `ref-nix-${round}`);
    const refHome = path.join(work, `ref-home-${round}`);
    await fs.mkdir(refNix);
    await fs.mkdir(refHome);
    times.refFirst.push(await timedSh(inNamespace(refNix, `nix-env -f ${expr} -iA all`), refEnv(refHome)));
    await timedSh(inNamespace(refNix, 'nix-env -e bench-all && nix-collect-garbage -d >/dev/null'), refEnv(refHome));
    times.refSecond.push(await timedSh(inNamespace(refNix, `nix-env -f ${expr} -iA all`), refEnv(refHome)));
  }
  const { oursFirst, oursSecond, refFirst, refSecond } = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)])) as Record<
    keyof typeof times,
    number
  >;
  const runs = (v: number[]) => v.map((t) => t.toFixed(2)).join(', ');
  console.log(
    `\n${ROUNDS} rounds, medians; relonix first ${runs(times.oursFirst)}, again ${runs(times.oursSecond)}; Debian's Nix first ${runs(times.refFirst)}, again ${runs(times.refSecond)} s`,
  );
  // each round's two sides ran back to back: their ratio moves less with the machine than the medians do
  const paired = (a: number[], b: number[]) => a.map((t, i) => `${(t / b[i]!).toFixed(2)}x`).join(', ');
  console.log(`each round's own ratio: first ${paired(times.oursFirst, times.refFirst)}; again ${paired(times.oursSecond, times.refSecond)}`);

  console.log(`\nclosure: ${built.length} paths, ${(narBytes / 1e6).toFixed(1)} MB of NARs (xz upstream)`);
  console.log(
    `the translator's CPU time (user and system) by the end of the first round's first install: ${use!.cpu.toFixed(2)} s, its programs' ${use!.children.toFixed(2)} s; its minor page faults ${use!.minflt}, its peak resident memory ${use!.peakMb.toFixed(0)} MB`,
  );
  const line = (what: string, mine: number, theirs: number, target: number) => {
    const ratio = mine / theirs;
    loadWatch.ratio(
      `${what.padEnd(34)} relonix ${mine.toFixed(2)} s, Debian's Nix at /nix/store ${theirs.toFixed(2)} s: ${ratio.toFixed(2)}x (target <= ${target}x)${ratio > target ? '  MISSED' : ''}`,
    );
  };
  line('nix-env -iA, first install', oursFirst, refFirst, 1.5);
  line('after garbage collection, again', oursSecond, refSecond, 1.1);
  await countTranslator();
  loadWatch.settle();
} finally {
  if (prefix) spawnSync(process.execPath, [RELONIX, 'translator', 'stop', '--prefix', prefix], { stdio: 'ignore' });
  // the translator's log, for a look at where the time went
  if (prefix && process.env.RELONIX_BENCH_LOG)
    await fs.copyFile(path.join(prefix, 'var/relonix/translator/server.log'), process.env.RELONIX_BENCH_LOG).catch(() => undefined);
  for (const s of servers) await s.close();
  if (built.length) spawnSync('nix-store', ['--delete', ...built], { env: { PATH: '/usr/bin:/bin', HOME: home, NIX_CONFIG: HOST_NIX }, stdio: 'ignore' });
  if (prefix) await removeTree(prefix);
  await removeTree(work);
}
