// Reading NARs: a NAR streamed into a directory tree, checked as Nix's parser checks it (known
// tokens only, zero padding, entry names without `/`, `.` or `..`, strictly sorted and unique) and
// hashed byte for byte, so the caller can compare NarHash and NarSize before the tree is moved into
// the store. Bad input is a NarFormatError, which the caller turns into its own error.
import { constants as C, chmodSync, closeSync, fchmodSync, futimesSync, lutimesSync, mkdirSync, openSync, symlinkSync, utimesSync } from 'node:fs';
import path from 'node:path';
import { writeAllSync } from '../../util/fs.ts';
import { CLOSE, EMPTY, MAGIC, MAX_TARGET, MAX_TOKEN, NarFormatError, NODE, OPEN_NAME, OPEN_TYPE, TARGET } from './framing.ts';
import { checkEntryName, NarReader } from './reader.ts';

export interface UnpackResult {
  /** raw sha256 of the NAR */
  hash: Buffer;
  size: number;
}

// Store objects carry mtime 1 and read-only modes, as Nix's canonicalisation leaves them.
const EPOCH1 = 1;

async function unpackNode(r: NarReader, dest: string): Promise<void> {
  await r.expect(OPEN_TYPE, '"(" "type"');
  const type = await r.str();
  if (type === 'regular') await unpackFile(r, dest);
  else if (type === 'symlink') {
    await r.expect(TARGET, '"target"');
    const target = await r.bytes(MAX_TARGET);
    if (target.length === 0 || target.includes(0)) throw new NarFormatError('the NAR holds an empty or invalid symlink target');
    symlinkSync(target.toString('utf8'), dest);
    try {
      lutimesSync(dest, EPOCH1, EPOCH1);
    } catch {
      // a filesystem without link times
    }
  } else if (type === 'directory') {
    mkdirSync(dest, { mode: 0o755 });
    let prev: Buffer | undefined;
    for (let tok = await r.str(); tok !== ')'; tok = await r.str()) {
      if (tok !== 'entry') throw new NarFormatError(`expected "entry" or ")" in a NAR directory, found "${tok.slice(0, 40)}"`);
      await r.expect(OPEN_NAME, '"(" "name"');
      const name = await r.bytes(MAX_TOKEN);
      checkEntryName(name, prev);
      prev = name;
      await r.expect(NODE, '"node"');
      await unpackNode(r, path.join(dest, name.toString('utf8')));
      await r.expect(CLOSE, '")"');
    }
    chmodSync(dest, 0o555);
    utimesSync(dest, EPOCH1, EPOCH1);
    return; // the directory's ")" ended the loop
  } else {
    throw new NarFormatError(`unknown NAR node type "${type.slice(0, 40)}"`);
  }
  await r.expect(CLOSE, '")"');
}

async function unpackFile(r: NarReader, dest: string): Promise<void> {
  let tok = await r.str();
  let executable = false;
  if (tok === 'executable') {
    await r.expect(EMPTY, '""');
    executable = true;
    tok = await r.str();
  }
  if (tok !== 'contents') throw new NarFormatError(`expected "contents" in the NAR, found "${tok.slice(0, 40)}"`);
  const len = await r.u64();
  // synchronous calls on the descriptor: a file is open, written, given its mode and time, and
  // closed in a handful of system calls, without a round trip to the I/O threads for each
  const fd = openSync(dest, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
  try {
    for await (const b of r.take(len)) writeAllSync(fd, b);
    await r.padding(len);
    fchmodSync(fd, executable ? 0o555 : 0o444);
    futimesSync(fd, EPOCH1, EPOCH1);
  } finally {
    closeSync(fd);
  }
}

/** Unpacks the NAR read from `src` at `dest` (which must not exist). Throws NarFormatError on bad input. */
export async function unpackNar(src: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, dest: string): Promise<UnpackResult> {
  const r = new NarReader(src);
  await r.expect(MAGIC, '"nix-archive-1"');
  await unpackNode(r, dest);
  if (!(await r.atEnd())) throw new NarFormatError('the NAR has data after its end');
  return { hash: r.hash.digest(), size: r.size };
}
