// A bundle's launcher on a host it shares with another user, who can write in /tmp beside its run
// dir: a lock whose target climbs out of /tmp, a symlink where a killed run's dir would be, a lock
// held by another uid, and a lock a killed run left whose pid now belongs to another process. The
// victim is uid 4242 on a second host (helpers/second-host.ts), the other user uid 4343. The bundle
// is what relonix bundle writes (writeBundle) of a one-path closure, a script reading a data file by
// its absolute path: what these tests watch is the launcher, which does not depend on what it runs.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { defaultRunDir } from '../../src/bundle/rundir.ts';
import { writeBundle } from '../../src/bundle/write.ts';
import { NOBODY_UID } from '../helpers/cli.ts';
import { removePrefix, tempDir } from '../helpers/paths.ts';
import { BUNDLE, onSecondHost, sections } from '../helpers/second-host.ts';
import { requireRoot, requireTool } from '../helpers/tools.ts';

requireRoot('a second host is a mount namespace, and its users uids of their own');
requireTool('setpriv');

/** The other user on the host: it may write in /tmp, as every user may. */
const OTHER_UID = 4343;
const OUTPUT = 'hello from the bundle\ndata: the data file says hi';

let storeDir: string;
let dir: string;
let bundle: string;
let runDir: string;

before(async () => {
  for (;;) {
    storeDir = `/tmp/h${randomBytes(2).toString('hex')}`;
    if (!existsSync(storeDir)) break;
  }
  const p = path.join(storeDir, '0123456789abcdfghijklmnpqrsvwxyz-hello');
  await fs.mkdir(path.join(p, 'bin'), { recursive: true });
  await fs.writeFile(path.join(p, 'share'), 'the data file says hi\n');
  await fs.writeFile(path.join(p, 'bin', 'hello'), `#!/bin/sh\necho 'hello from the bundle'\necho "data: $(cat ${p}/share)"\n`, { mode: 0o755 });
  runDir = defaultRunDir(storeDir, `${storeDir}\n${p}`);
  dir = tempDir('bundle-hostile');
  bundle = path.join(dir, 'hello.run');
  await writeBundle({ output: bundle, storeDir, runDir, paths: [p], entry: path.relative(storeDir, `${p}/bin/hello`), closureBytes: 100, version: 'test' });
});

after(async () => {
  if (dir) await removePrefix(dir);
  if (storeDir) await removePrefix(storeDir);
});

/** sh lines run as the other user, before the victim's script. */
const asOther = (script: string) => `setpriv --reuid=${OTHER_UID} --regid=${OTHER_UID} --clear-groups sh -c '${script}'`;

async function host(before: string, script: string, after = ''): Promise<Map<string, string>> {
  const r = await onSecondHost({ bundle, before, script, after });
  const s = sections(r.stdout);
  assert.ok(s.has('code'), `the second host ran the script:\n${r.stdout}\n${r.stderr}`);
  return s;
}

test("another user's lock whose target climbs out of /tmp removes nothing: refused at once, naming that user and the override", async () => {
  const s = await host(
    // the victim's files, and a lock naming them through a dir the other user made
    `mkdir -m 700 /var/tmp/victim && echo precious > /var/tmp/victim/thesis && chown -R ${NOBODY_UID}:${NOBODY_UID} /var/tmp/victim
${asOther(`mkdir ${runDir}.ux && ln -s x/../../var/tmp/victim ${runDir}.lock`)}`,
    `echo @@run; /usr/bin/timeout 60 ${BUNDLE} 2>&1; echo "code $?"`,
    'echo @@victim; ls /var/tmp/victim',
  );
  assert.match(
    s.get('run')!,
    new RegExp(`^relonix bundle: error: another user \\(uid ${OTHER_UID}\\) is unpacking into ${runDir}, or left ${runDir}\\.lock behind$`, 'm'),
  );
  assert.match(s.get('run')!, /^ {2}fix: set RELONIX_RUN_DIR to a new dir of 10 bytes/m);
  assert.match(s.get('run')!, /\ncode 126$/);
  assert.equal(s.get('victim'), 'thesis', "the victim's files are all there");
});

test("a symlink where a killed run's dir would be is not followed: the tree it names keeps its modes, and the bundle runs", async () => {
  const s = await host(
    `mkdir -m 755 /var/tmp/store && echo x > /var/tmp/store/f && chmod 444 /var/tmp/store/f && chmod 555 /var/tmp/store && chown -R ${NOBODY_UID}:${NOBODY_UID} /var/tmp/store
${asOther(`ln -s /var/tmp/store ${runDir}.u99999`)}`,
    `echo @@run; /usr/bin/timeout 60 ${BUNDLE} 2>&1; echo "code $?"
echo @@modes; /usr/bin/stat -c %a /var/tmp/store /var/tmp/store/f`,
    `echo @@tmp; ls -A /tmp`,
  );
  assert.equal(s.get('run'), `${OUTPUT}\ncode 0`, 'no message either: nothing was tried on it');
  assert.equal(s.get('modes'), '555\n444', 'the read-only tree stays read-only');
  assert.equal(s.get('tmp'), [path.basename(runDir), `${path.basename(runDir)}.u99999`].join('\n'), "the other user's symlink is left alone");
});

test("another user's live lock is refused at once, not waited for", async () => {
  const s = await host(asOther(`mkdir ${runDir}.u1 && ln -s 1 ${runDir}.lock`), `echo @@run; /usr/bin/timeout 30 ${BUNDLE} 2>&1; echo "code $?"`);
  assert.match(
    s.get('run')!,
    new RegExp(`^relonix bundle: error: another user \\(uid ${OTHER_UID}\\) is unpacking into ${runDir}, or left ${runDir}\\.u1 behind$`, 'm'),
  );
  assert.match(s.get('run')!, /\ncode 126$/, 'refused, not timed out (124)');
});

test('a lock a killed run left, whose pid now belongs to another process: cleared, and the bundle unpacks and runs', async () => {
  // what a run killed mid-unpack leaves: its dir and a lock naming its pid and start time; the pid
  // is taken again by a process that started later (here a sleep)
  const s = await host(
    '',
    `sleep 60 & p=$!
mkdir ${runDir}.u$p; echo half > ${runDir}.u$p/part; ln -s $p:1 ${runDir}.lock
echo @@run; /usr/bin/timeout 30 ${BUNDLE} 2>&1; echo "code $?"
echo @@tmp; ls -A /tmp
kill $p`,
  );
  assert.equal(s.get('run'), `${OUTPUT}\ncode 0`, 'not waiting for the unrelated process (timeout: 124)');
  assert.equal(s.get('tmp'), path.basename(runDir), 'the stale lock and dir are gone');
});
