// Every user-facing condition relonix names: each exported function of src/ that returns a
// RelonixError is listed here with its kind and the exit code a script sees. The list is checked
// against src/ itself, so a constructor added (or removed) without this table fails here.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import ts from 'typescript';
import type { GcPlan } from '../../src/cache/gc-plan.ts';
import { EXIT_CODES } from '../../src/cli.ts';
import { layout } from '../../src/prefix/layout.ts';
import { NarFormatError } from '../../src/store/nar/framing.ts';
import { type ErrorKind, RelonixError } from '../../src/util/errors.ts';
import { SRC, sources } from '../helpers/sources.ts';

const l = layout('/tmp/relonix-conditions-test');
const plan: GcPlan = {
  kept: [],
  removedNarInfos: ['a.narinfo', 'b.narinfo'],
  removedNars: ['nar/a.nar'],
  removedBytes: 1 << 20,
  narInfoCount: 3,
  missingRoots: [],
  young: 0,
  odd: [],
} as unknown as GcPlan;
const apt = { dir: '/tmp/apt', mirror: 'http://deb.debian.org/debian', suite: 'trixie', arch: 'amd64', keyring: '/k.gpg' };
const builder = { url: 'ssh://me@b', user: 'me', host: 'b', jobs: 1 };
const eacces = Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' });
const sshDied = { code: 255, signal: null, stdout: '', stderr: 'Connection refused', all: 'Connection refused' };
const narItem = { ni: { storePath: '/nix/store/x-hello', url: 'nar/x.nar.xz' }, target: { url: 'http://x' } };
const enoent = Object.assign(new Error('ENOENT: /x'), { code: 'ENOENT', path: '/x' });

/** file (under src/) → constructor → the arguments to call it with, its kind and its exit code. */
const CONDITIONS: Record<string, Record<string, { args: unknown[]; kind: ErrorKind; exit: number }>> = {
  'bootstrap/engine.ts': { stageFailed: { args: [{ name: 'fetch', title: 'Fetch the tarball' }, new Error('EBADF')], kind: 'failure', exit: 1 } },
  'bootstrap/stage.ts': { stageNotRecorded: { args: ['fetch'], kind: 'failure', exit: 1 } },
  'bootstrap/stages/unpack.ts': {
    changedSinceFetch: { args: ['/tmp/nix.tar.xz', 'aa', 'bb'], kind: 'integrity', exit: 3 },
    tarballForOtherSystem: { args: ['aarch64-linux', 'x86_64-linux'], kind: 'preflight', exit: 5 },
  },
  'bootstrap/tarball.ts': { notAReleaseTarball: { args: ['nix-2.24.10-x86_64-linux/install is missing from the tarball'], kind: 'integrity', exit: 3 } },
  'bootstrap/untar.ts': {
    damagedTarball: { args: ['/tmp/nix.tar.xz', new Error('the xz stream is corrupt')], kind: 'integrity', exit: 3 },
    unsafeTarball: { args: ['/tmp/nix.tar.xz', 'nix-2.24.10-x86_64-linux/../x leaves the tree'], kind: 'integrity', exit: 3 },
  },
  'bootstrap/verify-nix.ts': {
    checkBuildWrong: { args: ['wrote "no" instead of "ok"'], kind: 'failure', exit: 1 },
    librariesNotRelocated: { args: [l, ['/lib/libc.so.6']], kind: 'integrity', exit: 3 },
    loaderListFailed: { args: ['/tmp/s/x-glibc/lib/ld-linux.so.2', '/tmp/s/y-nix/bin/nix', 'cannot execute'], kind: 'failure', exit: 1 },
    loaderNotRelocated: { args: [l, '/tmp/s/y-nix/bin/nix', '/lib64/ld-linux-x86-64.so.2'], kind: 'integrity', exit: 3 },
    registeredMissing: { args: [l, ['/tmp/s/x-glibc', '/tmp/s/y-nix']], kind: 'integrity', exit: 3 },
  },
  'build/nix.ts': { restoreCacheUnreadable: { args: [l, 'https://c', new Error('HTTP 503')], kind: 'network', exit: 6 } },
  'build/outcome.ts': {
    buildNotPushed: { args: [2, 'https://c', 'pushing failed'], kind: 'network', exit: 6 },
    closureNotPushed: { args: ['https://c', new RelonixError('HTTP 503', { kind: 'network' })], kind: 'network', exit: 6 },
  },
  'build/uploader.ts': { pushFailed: { args: [new Error('EIO: i/o error')], kind: 'failure', exit: 1 } },
  'bundle/entry.ts': {
    entryAmbiguous: { args: ['/nix/store/x-hello', ['a', 'b']], kind: 'usage', exit: 2 },
    entryLeadsOutside: { args: ['/nix/store/x-hello/bin/a', '/usr/bin/a'], kind: 'usage', exit: 2 },
    entryLeavesRoot: { args: ['../a', '/nix/store/x-hello'], kind: 'usage', exit: 2 },
    entryNotExecutable: { args: ['/nix/store/x-hello/README', '/nix/store/x-hello'], kind: 'usage', exit: 2 },
    entryNotInClosure: { args: ['/nix/store/y-other/bin/a', '/nix/store/x-hello'], kind: 'usage', exit: 2 },
    noEntryToGuess: { args: ['/nix/store/x-hello'], kind: 'usage', exit: 2 },
    noSuchEntry: { args: ['/nix/store/x-hello/bin/a', '/nix/store/x-hello'], kind: 'usage', exit: 2 },
  },
  'bundle/index.ts': {
    outputDirNotWritable: { args: ['/ro/x.run', '/ro'], kind: 'usage', exit: 2 },
    outputIsDirectory: { args: ['/tmp'], kind: 'usage', exit: 2 },
    outputNotAFile: { args: ['/dev/null', 'a device'], kind: 'usage', exit: 2 },
  },
  'bundle/installables.ts': {
    installableFailed: { args: ['nix-build', 'hello', 1, 'default.nix'], kind: 'failure', exit: 1 },
    namesNoStorePath: { args: ['/tmp/s/x', '/tmp/s'], kind: 'usage', exit: 2 },
  },
  'bundle/rundir.ts': { noRunDirOfLength: { args: ['/s'], kind: 'usage', exit: 2 } },
  'cache/compress.ts': {
    hostZstdFails: { args: ['/usr/bin/zstd', 'zstd: error while loading shared libraries'], kind: 'failure', exit: 1 },
    noHostZstd: { args: [], kind: 'usage', exit: 2 },
    unknownCompression: { args: ['bzip2'], kind: 'usage', exit: 2 },
    unreadableCompression: { args: ['bzip2'], kind: 'failure', exit: 1 },
  },
  'cache/gc-plan.ts': { keepMatchesNothing: { args: ['keep.txt', 0, 'file:///c', 3], kind: 'usage', exit: 2 } },
  'cache/gc.ts': {
    cacheNotListable: { args: ['http://x'], kind: 'usage', exit: 2 },
    gcRemovesMost: { args: ['file:///c', plan], kind: 'usage', exit: 2 },
    keepFileUnreadable: { args: ['keep.txt', 'it is not a regular file'], kind: 'usage', exit: 2 },
  },
  'cache/key-files.ts': {
    keyDirUnusable: { args: ['/tmp/k', 'permission denied'], kind: 'usage', exit: 2 },
    keyFilesExist: { args: [['/tmp/k/k-1.secret']], kind: 'usage', exit: 2 },
    keyGivenForFile: { args: [], kind: 'usage', exit: 2 },
    secretKeyFileUnreadable: { args: ['k.secret', 'it does not exist'], kind: 'usage', exit: 2 },
  },
  'cache/keys.ts': {
    badKeyName: { args: ['../k'], kind: 'usage', exit: 2 },
    badPublicKey: { args: ['k', 'it is not base64'], kind: 'usage', exit: 2 },
    badSecretKey: { args: ['key.sec', 'it is empty'], kind: 'usage', exit: 2 },
  },
  'cache/meta.ts': {
    badManifest: { args: ['http://x', 'is not valid JSON: Unexpected token'], kind: 'integrity', exit: 3 },
    cacheIncomplete: { args: ['nar/x.nar', 'which x.narinfo names'], kind: 'failure', exit: 1 },
    notACache: { args: ['http://x', 'has no nix-cache-info'], kind: 'usage', exit: 2 },
    storeDirMismatch: { args: ['http://x', '/nix/store', '/tmp/s'], kind: 'usage', exit: 2 },
  },
  'cache/narinfo.ts': {
    damagedNarInfo: { args: ['http://x/x.narinfo', new Error('"x" is not a store path name')], kind: 'integrity', exit: 3 },
    narInfoForOtherPath: { args: ['http://x/x.narinfo', '/nix/store/y-other', '/nix/store/x-hello'], kind: 'integrity', exit: 3 },
  },
  'cache/publish-prefix.ts': { notANix: { args: ['/tmp/s/x-hello'], kind: 'usage', exit: 2 } },
  'cache/publish.ts': {
    changedSinceRegistered: { args: ['/nix/store/x-hello'], kind: 'integrity', exit: 3 },
    notInStore: { args: ['/tmp/x-hello', '/nix/store'], kind: 'usage', exit: 2 },
    publishFailed: { args: ['file:///c', new Error('EBADF')], kind: 'failure', exit: 1 },
  },
  'cache/closure.ts': {
    notSignedByTrustedKey: { args: ['/nix/store/x-hello', 'other-1', [{ name: 'k-1' }]], kind: 'integrity', exit: 3 },
  },
  'cache/readback.ts': { notStored: { args: ['http://x', 'x.narinfo', 'is missing'], kind: 'failure', exit: 1 } },
  'cache/restore-nar.ts': {
    narNotAsPromised: { args: ['http://x/nar/x.nar', '10 bytes, but the narinfo promises 20'], kind: 'integrity', exit: 3 },
    narUnusable: { args: [narItem, new Error('the xz stream is corrupt')], kind: 'integrity', exit: 3 },
  },
  'cache/restore.ts': {
    nixNotRealised: { args: ['/nix/store/x-nix', ['http://x'], new Error('nix-store failed')], kind: 'network', exit: 6 },
    noNixInCaches: { args: [['http://x'], 'x86_64-linux', '/tmp/s'], kind: 'usage', exit: 2 },
    noTrustedKey: { args: [], kind: 'usage', exit: 2 },
    noUsableCache: { args: ['x86_64-linux', '/tmp/s', [{ text: 'http://x: refused', kind: 'network' }]], kind: 'network', exit: 6 },
  },
  'cache/target-file.ts': {
    badFileCacheUrl: { args: ['file://host/c'], kind: 'usage', exit: 2 },
    notInCache: { args: ['file:///c', 'x.narinfo', 'is a symlink'], kind: 'usage', exit: 2 },
  },
  'cache/target-http.ts': {
    badHeader: { args: [1], kind: 'usage', exit: 2 },
    badHttpCacheUrl: { args: ['http://[x'], kind: 'usage', exit: 2 },
  },
  'cache/target-s3.ts': {
    noBucket: { args: ['s3:///?region=x'], kind: 'usage', exit: 2 },
    noS3Credentials: { args: ['s3://b'], kind: 'usage', exit: 2 },
  },
  'cache/targets.ts': { unsupportedCacheUrl: { args: ['ftp://x'], kind: 'usage', exit: 2 } },
  'commands/options.ts': {
    badEnvironmentValue: { args: ['RELONIX_TRANSLATOR_IDLE', 'x', 'a number of seconds', '120'], kind: 'usage', exit: 2 },
    badOptionValue: { args: ['--jobs', 'x', 'a whole number', '4'], kind: 'usage', exit: 2 },
  },
  'commands/translate.ts': { nothingToTranslate: { args: [], kind: 'usage', exit: 2 } },
  'commands/translator.ts': { badListenFd: { args: ['x'], kind: 'usage', exit: 2 }, noTranslator: { args: ['/tmp/p'], kind: 'usage', exit: 2 } },
  'demo/apt.ts': {
    aptFailed: { args: [apt, 'apt-get update', Object.assign(new Error('exit 100'), { stderr: 'E: Failed to fetch' })], kind: 'network', exit: 6 },
    debNotAsIndexed: { args: [apt, { name: 'nix-bin', version: '2.26.3' }, '/tmp/debs'], kind: 'integrity', exit: 3 },
    noDebianPackage: { args: [apt, ['nix-bin']], kind: 'failure', exit: 1 },
  },
  'demo/debian-nix.ts': {
    fixtureToolsMissing: { args: ['the demo tarball', ['patchelf']], kind: 'preflight', exit: 5 },
    noNixBin: { args: [], kind: 'preflight', exit: 5 },
  },
  'demo/fixture-tarball.ts': {
    fixturePackFailed: { args: ['/tmp/w/nix.tar.xz', '0/1', 'xz: No space left on device'], kind: 'failure', exit: 1 },
    fixtureSourceUnfit: { args: ['no Debian package owns /usr/bin/nix'], kind: 'failure', exit: 1 },
  },
  'demo/trixie-nix.ts': { noArchiveKeyring: { args: [], kind: 'preflight', exit: 5 } },
  'doctor/finding.ts': { doctorFoundProblems: { args: [[{ id: 'seccomp', verdict: 'problem', summary: 's' }]], kind: 'preflight', exit: 5 } },
  'host/passwd.ts': { noPasswdEntry: { args: [4242], kind: 'preflight', exit: 5 } },
  'net/arriving.ts': { arrivalAbandoned: { args: ['the download started the file over'], kind: 'failure', exit: 1 } },
  'net/download.ts': {
    downloadUnwritable: { args: ['/tmp/p/nix.tar.xz.part', enoent], kind: 'preflight', exit: 5 },
    longerThanSaid: { args: ['http://x/nix.tar.xz', 10, 20], kind: 'network', exit: 6 },
  },
  'net/http.ts': {
    credentialsRefused: { args: ['GET http://x: HTTP 401'], kind: 'usage', exit: 2 },
    missingObject: { args: ['GET http://x: HTTP 404'], kind: 'failure', exit: 1 },
    notHttpUrl: { args: ['ftp://x/nix.tar.xz'], kind: 'usage', exit: 2 },
    requestRefused: { args: ['PUT http://x: HTTP 400'], kind: 'failure', exit: 1 },
    uploadsRefused: { args: ['PUT http://x: HTTP 405'], kind: 'usage', exit: 2 },
  },
  'net/local.ts': {
    checksumError: { args: ['http://x/nix.tar.xz', 'aa', 'bb'], kind: 'integrity', exit: 3 },
    notALocalFileUrl: { args: ['file://host/x', new Error('File URL host must be "localhost" or empty')], kind: 'usage', exit: 2 },
    tarballNotAFile: { args: ['/dev/zero', 'a device'], kind: 'usage', exit: 2 },
    tarballUnreadable: { args: ['/x', enoent], kind: 'usage', exit: 2 },
    tooBig: { args: ['http://x/nix.tar.xz', 1 << 30, 1 << 20], kind: 'usage', exit: 2 },
  },
  'net/netrc.ts': { netrcCannotCarry: { args: ['x.example'], kind: 'usage', exit: 2 } },
  'net/release.ts': {
    badChecksumFile: { args: ['/x.tar.xz.sha256', 'junk'], kind: 'integrity', exit: 3 },
    noChecksumFile: { args: ['/x.tar.xz', '/x.tar.xz.sha256'], kind: 'usage', exit: 2 },
  },
  'net/sha256.ts': { notASha256: { args: ['abc'], kind: 'usage', exit: 2 } },
  'prefix/build-hook.ts': { noBuildHook: { args: [l, 'its libexec has no build-remote'], kind: 'preflight', exit: 5 } },
  'prefix/guard.ts': {
    cannotCreateDir: { args: ['the prefix', '/proc/x', '/proc takes no new directories'], kind: 'preflight', exit: 5 },
    notTheDemos: { args: [l], kind: 'usage', exit: 2 },
    prefixNotEmpty: { args: ['/tmp/p', ['a', 'b']], kind: 'preflight', exit: 5 },
    prefixRefused: { args: [[{ message: 'the prefix is too long', hint: 'choose a shorter one' }]], kind: 'preflight', exit: 5 },
    storeDirChanged: { args: [l, '/tmp/other'], kind: 'usage', exit: 2 },
  },
  'prefix/layout.ts': {
    badStoreDir: { args: ['store'], kind: 'usage', exit: 2 },
    emptyPrefix: { args: ['--prefix ""'], kind: 'usage', exit: 2 },
    storeDirHoldsPrefix: { args: ['/tmp', '/tmp/p'], kind: 'usage', exit: 2 },
  },
  'prefix/state.ts': {
    brokenState: { args: [l, 'it is not valid JSON'], kind: 'failure', exit: 1 },
    noNix: { args: [l.prefix], kind: 'failure', exit: 1 },
    stateNotReadable: { args: [l, eacces], kind: 'preflight', exit: 5 },
  },
  'prefix/tools.ts': {
    cannotRun: { args: ['hello', Object.assign(new Error('spawn hello ENOENT'), { code: 'ENOENT' })], kind: 'missing', exit: 127 },
    nixLacksTool: { args: ['/tmp/p', 'nix-store', '/tmp/s/x-nix'], kind: 'failure', exit: 1 },
    nixToolFailed: { args: ['nix-store --verify', { code: 1, signal: null, all: 'error: x' }, 'check the prefix'], kind: 'failure', exit: 1 },
    nixToolWontStart: { args: ['nix-store --verify', eacces, 'check the prefix'], kind: 'failure', exit: 1 },
    noDerivation: { args: [['-E', '{}']], kind: 'usage', exit: 2 },
    notADerivation: { args: ['"x"', '/tmp/s'], kind: 'usage', exit: 2 },
  },
  'prefix/uninstall.ts': {
    foreignInStore: { args: [l, ['notes.txt']], kind: 'usage', exit: 2 },
    notAPrefix: { args: ['/tmp/p', 'it has no var/relonix'], kind: 'usage', exit: 2 },
  },
  'remote/bootstrap.ts': {
    builderNodeTooOld: { args: ['b', '18.19.0', 'npx relonix bootstrap'], kind: 'preflight', exit: 5 },
    builderWriteRefused: { args: [builder, '/tmp/p/x', 'Permission denied'], kind: 'preflight', exit: 5 },
    noOwnBundle: { args: [], kind: 'failure', exit: 1 },
    remoteBootstrapFailed: { args: [l, 'b', 1], kind: 'failure', exit: 1 },
    sourceNotRecorded: { args: [l, 'b', 'npx relonix bootstrap'], kind: 'preflight', exit: 5 },
    uploadGone: { args: ['/tmp/x.tar.xz', 'b', 'npx relonix bootstrap'], kind: 'preflight', exit: 5 },
  },
  'remote/builders.ts': {
    builderHasNoNix: { args: [l, builder], kind: 'preflight', exit: 5 },
    builderIsItself: { args: [l, builder], kind: 'usage', exit: 2 },
    builderNixSilent: { args: [l, builder, sshDied], kind: 'preflight', exit: 5 },
    builderStoreDirDiffers: { args: [l, builder, '/nix/store'], kind: 'preflight', exit: 5 },
    builderSystemDiffers: { args: [{ ...builder, system: 'x86_64-linux' }, 'aarch64-linux'], kind: 'preflight', exit: 5 },
    noSshKey: { args: ['/tmp/id'], kind: 'usage', exit: 2 },
    noSuchBuilder: { args: [l, 'ssh://me@c', [builder]], kind: 'usage', exit: 2 },
  },
  'remote/machines.ts': {
    badBuilderUrl: { args: ['http://b', 'only ssh:// is supported'], kind: 'usage', exit: 2 },
    badBuildersFile: { args: ['/tmp/p/builders.json', 'is not JSON'], kind: 'usage', exit: 2 },
  },
  'remote/ssh.ts': {
    builderUnreachable: { args: [builder, 'Connection refused'], kind: 'network', exit: 6 },
    hostKeyUnknown: { args: [l, builder, 'Host key verification failed.'], kind: 'preflight', exit: 5 },
    loginRefused: { args: [builder, 'Permission denied (publickey).'], kind: 'preflight', exit: 5 },
    noSshClient: { args: [Object.assign(new Error('spawn ssh ENOENT'), { code: 'ENOENT' })], kind: 'preflight', exit: 5 },
    sshFailure: { args: [l, builder, sshDied], kind: 'network', exit: 6 },
  },
  'store/aterm.ts': { drvNotATerm: { args: [3, 'a missing comma'], kind: 'integrity', exit: 3 } },
  'store/errors.ts': {
    changedWhileRead: { args: ['/nix/store/x-hello/bin/hello', 10, 20], kind: 'failure', exit: 1 },
    notStorable: { args: ['/nix/store/x-hello/fifo'], kind: 'integrity', exit: 3 },
  },
  'translate/closure.ts': { sourceUnaddressed: { args: ['/nix/store/x-src'], kind: 'integrity', exit: 3 } },
  'translate/item.ts': {
    upstreamNarDiffers: {
      args: ['https://c/nar/x.nar', { storePath: '/nix/store/x-hello', narHash: 'sha256:x', narSize: 1 }, { hash: Buffer.alloc(32), size: 2 }],
      kind: 'integrity',
      exit: 3,
    },
  },
  'translate/modulo.ts': {
    noSuchOutput: { args: ['dev', '/nix/store/x-hello.drv'], kind: 'integrity', exit: 3 },
    notADrvPath: { args: ['/nix/store/x-hello'], kind: 'usage', exit: 2 },
    untranslatableDerivation: { args: ['/nix/store/x-hello.drv', 'an impure derivation (__impure)'], kind: 'usage', exit: 2 },
  },
  'translate/paths.ts': { badContentAddress: { args: ['"x" is not a content address'], kind: 'integrity', exit: 3 } },
  'translate/replace.ts': {
    hashMappedTwice: { args: ['0'.repeat(32)], kind: 'usage', exit: 2 },
    notAHashPart: { args: ['short'], kind: 'usage', exit: 2 },
    notAStoreDir: { args: ['/nix/store/'], kind: 'usage', exit: 2 },
    storeDirLengthsDiffer: { args: ['/nix/store', '/tmp/nix/store', 'https://c'], kind: 'usage', exit: 2 },
  },
  'translate/rewrite.ts': {
    namesCollide: { args: ['/bin', 'x'], kind: 'integrity', exit: 3 },
    narMalformed: { args: [new NarFormatError('the NAR ends early')], kind: 'integrity', exit: 3 },
  },
  'translate/translate.ts': { notAStorePathArg: { args: ['hello'], kind: 'usage', exit: 2 } },
  'translate/twin.ts': {
    closureIncomplete: { args: ['it lacks /nix/store/x-a.drv'], kind: 'usage', exit: 2 },
    inputCycle: { args: ['/nix/store/x-a.drv'], kind: 'integrity', exit: 3 },
    pathDoesNotFollow: { args: ['/nix/store/x-a', '/nix/store', 'its text gives another path'], kind: 'integrity', exit: 3 },
  },
  'translate/upstream.ts': {
    noUpstreamKey: { args: [], kind: 'usage', exit: 2 },
    notUpstream: { args: ['https://cache.nixos.org', '/nix/store/x-hello'], kind: 'usage', exit: 2 },
    upstreamUnreadable: { args: ['https://c', new Error('HTTP 503')], kind: 'network', exit: 6 },
  },
  'translator/client.ts': { translatorUnavailable: { args: [l, 'its port is taken', 'free it'], kind: 'failure', exit: 1 } },
  'translator/config.ts': {
    badTranslatorConfig: { args: ['/tmp/p/var/relonix/translator/config.json'], kind: 'usage', exit: 2 },
    translatorKeyUnreadable: { args: ['/tmp/p/key.secret', eacces], kind: 'failure', exit: 1 },
  },
  'translator/setup.ts': {
    keyWithoutUpstream: { args: [], kind: 'usage', exit: 2 },
    noFreePort: { args: [l, 12000], kind: 'preflight', exit: 5 },
    upstreamUnusable: { args: ['https://c', new Error('x')], kind: 'usage', exit: 2 },
  },
  'util/errors.ts': {
    cacheNeedsKey: { args: ['--from', 'http://x', '--from-key'], kind: 'usage', exit: 2 },
    noSpace: { args: ['/tmp', 0, 1 << 20], kind: 'preflight', exit: 5 },
  },
  'util/lock.ts': { lockBusy: { args: ['/tmp/p/var/relonix/lock', undefined], kind: 'busy', exit: 4 } },
  'util/retry.ts': { stillUnreachable: { args: ['GET http://x', new Error('connect ECONNREFUSED'), 'check the network'], kind: 'network', exit: 6 } },
  'util/self.ts': { packageDamaged: { args: [new Error('Cannot find module /x/chunks/a.mjs')], kind: 'failure', exit: 1 } },
  'util/system.ts': {
    noReleaseForCpu: { args: ['mips'], kind: 'preflight', exit: 5 },
    notLinux: { args: ['darwin'], kind: 'preflight', exit: 5 },
  },
};

/** `file name` of each exported function declared to return a RelonixError. */
function constructorsInSource(): string[] {
  const out: string[] = [];
  for (const file of sources(SRC)) {
    const sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
    for (const st of sf.statements) {
      const exported = ts.canHaveModifiers(st) && ts.getModifiers(st)?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword);
      if (exported && ts.isFunctionDeclaration(st) && st.name && st.type?.getText(sf) === 'RelonixError') {
        out.push(`${path.relative(SRC, file)} ${st.name.text}`);
      }
    }
  }
  return out.sort();
}

test('conditions: every exported constructor of a RelonixError in src/ is listed here, and nothing else', () => {
  const listed = Object.entries(CONDITIONS)
    .flatMap(([file, fns]) => Object.keys(fns).map((name) => `${file} ${name}`))
    .sort();
  const found = constructorsInSource();
  assert.ok(found.length >= 20, `the scan found the constructors (${found.length})`);
  assert.deepEqual(found, listed, 'add the new constructor to CONDITIONS with its kind and exit code (or drop one that is gone)');
});

/** `file:line` of each `new RelonixError` outside an exported function declared to return one. */
function builtInline(): string[] {
  const out: string[] = [];
  for (const file of sources(SRC)) {
    const sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
    const visit = (n: ts.Node): void => {
      if (ts.isNewExpression(n) && n.expression.getText(sf) === 'RelonixError') {
        let f: ts.Node | undefined = n.parent;
        while (f && !ts.isFunctionLike(f)) f = f.parent;
        const named =
          f !== undefined &&
          ts.isFunctionDeclaration(f) &&
          ts.getModifiers(f)?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword) &&
          /\bRelonixError\b/.test(f.type?.getText(sf) ?? '');
        if (!named) out.push(`${path.relative(SRC, file)}:${sf.getLineAndCharacterOfPosition(n.getStart(sf)).line + 1}`);
      }
      ts.forEachChild(n, visit);
    };
    visit(sf);
  }
  return out;
}

test('conditions: a RelonixError is only ever made by a named constructor, never inline where it is thrown', () => {
  assert.deepEqual(builtInline(), [], 'give the condition a constructor of its own (exported, returning RelonixError) and list it above');
});

test('conditions: each has its one kind and exit code, a message and the fix', async () => {
  for (const [file, fns] of Object.entries(CONDITIONS)) {
    const mod = (await import(path.join(SRC, file))) as Record<string, (...args: unknown[]) => unknown>;
    for (const [name, c] of Object.entries(fns)) {
      const e = mod[name]!(...c.args);
      assert.ok(e instanceof RelonixError, `${name} makes a RelonixError`);
      assert.equal(e.kind, c.kind, `${name}'s kind`);
      assert.equal(EXIT_CODES[e.kind], c.exit, `${name}'s exit code`);
      assert.ok(e.message.length > 10, `${name} says what went wrong: ${e.message}`);
      assert.ok((e.hint ?? '').length > 10, `${name} says the fix: ${e.hint}`);
    }
  }
});

test('conditions: no Nix in a prefix is said one way, with the bootstrap that fixes it', async () => {
  const { noNix } = await import('../../src/prefix/state.ts');
  const e = noNix('/home/me/nix', 'so there is no Nix to publish', 'or name the store paths to publish');
  assert.equal(e.message, 'no Nix is installed in /home/me/nix yet, so there is no Nix to publish');
  assert.equal(e.hint, 'run relonix bootstrap --prefix /home/me/nix first; or name the store paths to publish');
  assert.equal(noNix('/tmp/nix').hint, 'run relonix bootstrap first', 'the default prefix needs no --prefix');
  assert.equal(noNix("/tmp/it's").hint, "run relonix bootstrap --prefix '/tmp/it'\\''s' first", 'the prefix is quoted for sh');
});

test('conditions: a cache given without its key is said one way for every option, its credentials masked', async () => {
  const { cacheNeedsKey } = await import('../../src/util/errors.ts');
  const e = cacheNeedsKey('--translate-from', 'https://alice:s3cret@cache.example/x?token=t0k', '--translate-key');
  assert.equal(e.message, '--translate-from https://***@cache.example/x?token=*** needs --translate-key, the key its narinfos are signed with');
  assert.equal(
    cacheNeedsKey('--from', 'http://c.example', '--from-key').hint,
    "add --from-key NAME:BASE64 (the cache's public key, as its operator publishes it)",
  );
  assert.equal(
    cacheNeedsKey('--upstream', 'http://c.example', '--upstream-key').message,
    '--upstream http://c.example needs --upstream-key, the key its narinfos are signed with',
  );
});

test('conditions: a damaged narinfo of a cache is integrity, named by where it is, whatever is wrong in it', async () => {
  const { readCachedNarInfo } = await import('../../src/cache/narinfo.ts');
  const where = 'file:///c/0123456789abcdfghijklmnpqrsvwxyz.narinfo';
  for (const [text, what] of [
    ['no field here\n', /malformed line "no field here"/],
    ['StorePath: /nix/store/not-a-store-path\nURL: nar/x.nar\nNarHash: sha256:x\nNarSize: 1\n', /not-a-store-path/],
    ['StorePath: /nix/store/0123456789abcdfghijklmnpqrsvwxyz-x\nURL: nar/x.nar\nNarHash: md5:x\nNarSize: 1\n', /is not a sha256 hash/],
  ] as const) {
    assert.throws(
      () => readCachedNarInfo(Buffer.from(text), where),
      (e: unknown) => {
        assert.ok(e instanceof RelonixError && e.kind === 'integrity', String(e));
        assert.ok(e.message.startsWith(`${where}: `), e.message);
        assert.match(e.message, what);
        assert.match(e.hint ?? '', /publish the path to it again/);
        return true;
      },
    );
  }
});
