// Key files: reading the NAME.secret a command signs with, and keygen writing a new pair. A secret
// key is material no message may carry, so every refusal here names the file, never its content
// (nor an argument that is itself a key pasted where its file was expected).
import { constants as C, promises as fs } from 'node:fs';
import path from 'node:path';
import { errorMessage, RelonixError } from '../util/errors.ts';
import { writeFileAtomic } from '../util/fs.ts';
import { generateKey, parseSecretKey, type SecretKey } from './keys.ts';

/** A key file is a line of about a hundred bytes; anything much bigger is not one (or /dev/zero). */
const MAX_KEY_FILE = 4096;

/** `--secret-key` given a key itself (NAME:BASE64, or the base64 alone) instead of the file holding it. */
function looksLikeKey(arg: string): boolean {
  const body = arg.trim().replace(/^[^:]*:/, '');
  return /^[A-Za-z0-9+/]+={0,2}$/.test(body) && Buffer.from(body, 'base64').length >= 32;
}

export async function readSecretKeyFile(file: string): Promise<SecretKey> {
  if (looksLikeKey(file) && !(await fs.lstat(file).catch(() => undefined))) {
    throw keyGivenForFile();
  }
  let text: string;
  try {
    const fh = await fs.open(file, C.O_RDONLY | C.O_NONBLOCK);
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw secretKeyFileUnreadable(file, 'it is not a regular file');
      if (st.size > MAX_KEY_FILE) throw secretKeyFileUnreadable(file, `it holds ${st.size} bytes, far more than a key`);
      text = await fh.readFile('utf8');
    } finally {
      await fh.close();
    }
  } catch (e) {
    throw e instanceof RelonixError ? e : secretKeyFileUnreadable(file, fileProblem(e));
  }
  return parseSecretKey(text, `the secret key file ${file}`);
}

export interface KeyPairFiles {
  secretFile: string;
  publicFile: string;
  publicKey: string;
}

/**
 * Writes NAME.secret (0600) and NAME.public in `outDir` (made 0700 when missing) and nowhere else:
 * the name is checked as a key name first, so it can hold no `/` or `..`. An existing file of either
 * name is replaced only with `force`, and then the name itself is replaced, never what a symlink
 * there points at.
 */
export async function writeKeyPair(name: string, outDir: string, opts: { force?: boolean } = {}): Promise<KeyPairFiles> {
  const k = generateKey(name);
  const dir = path.resolve(outDir);
  const secretFile = path.join(dir, `${name}.secret`);
  const publicFile = path.join(dir, `${name}.public`);
  if (path.dirname(secretFile) !== dir || path.dirname(publicFile) !== dir) throw new Error(`internal error: the key name ${name} leaves ${dir}`);
  await makeKeyDir(dir);
  const present = [];
  for (const f of [secretFile, publicFile]) if (await fs.lstat(f).catch(() => undefined)) present.push(f);
  if (present.length && !opts.force) {
    throw keyFilesExist(present);
  }
  await writeFileAtomic(secretFile, k.secret, 0o600);
  await writeFileAtomic(publicFile, k.public, 0o644);
  return { secretFile, publicFile, publicKey: k.public };
}

async function makeKeyDir(dir: string): Promise<void> {
  const st = await fs.stat(dir).catch(() => undefined);
  if (st?.isDirectory()) return;
  if (st) throw keyDirUnusable(dir, fileProblem({ code: 'ENOTDIR' }));
  try {
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw keyDirUnusable(dir, fileProblem(e));
  }
}

/** What an errno means for a file the user named, as a sentence. */
function fileProblem(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  const known: Record<string, string> = {
    ENOENT: 'it does not exist',
    EACCES: 'permission denied',
    EPERM: 'permission denied',
    ENOTDIR: 'a part of its path is not a directory',
    EISDIR: 'it is a directory',
    EROFS: 'the filesystem is read-only',
    ENAMETOOLONG: 'the name is too long',
    ELOOP: 'too many symlinks on its path',
  };
  return (code && known[code]) ?? errorMessage(e);
}

/** --secret-key given the key itself, not its file: refused without echoing it. */
export function keyGivenForFile(): RelonixError {
  return new RelonixError('--secret-key takes the file a secret key is in; what was given is no file and looks like a key itself (not printed here)', {
    kind: 'usage',
    hint: 'write the key to a file only you can read (umask 077; printf %s "$KEY" > k.secret) and pass --secret-key k.secret',
  });
}

/** A --secret-key file that cannot be read as a small regular file. */
export function secretKeyFileUnreadable(file: string, why: string): RelonixError {
  return new RelonixError(`cannot read the secret key file ${file}: ${why}`, {
    kind: 'usage',
    hint: 'pass the NAME.secret file; create one with `relonix keygen --name NAME --out DIR`',
  });
}

/** keygen would replace key files that exist, without --force. */
export function keyFilesExist(present: string[]): RelonixError {
  return new RelonixError(`${present.join(' and ')} already exist${present.length === 1 ? 's' : ''}`, {
    kind: 'usage',
    hint: 'choose another --name or --out, or pass --force to replace them (a replaced secret key is gone for good: caches signed with it then need the new public key)',
  });
}

/** keygen's --out that is no directory this user can make or write. */
export function keyDirUnusable(dir: string, why: string): RelonixError {
  return new RelonixError(`--out ${dir} cannot hold the keys: ${why}`, { kind: 'usage', hint: 'pass a directory you can write as --out' });
}
