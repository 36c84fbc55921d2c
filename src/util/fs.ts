import { promises as fs, constants as C } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';

export function tempSibling(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

/** Write through a temporary file in the same directory and rename: readers see old or new, never half. */
export async function writeFileAtomic(target: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  await fs.mkdir(path.dirname(target), { recursive: true });
  const tmp = tempSibling(target);
  try {
    const fh = await fs.open(tmp, C.O_WRONLY | C.O_CREAT | C.O_EXCL, mode);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.chmod(tmp, mode);
    await fs.rename(tmp, target);
  } catch (e) {
    await fs.rm(tmp, { force: true });
    throw e;
  }
}

export async function exists(p: string): Promise<boolean> {
  try {
    await fs.lstat(p);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

export async function readJson<T>(p: string): Promise<T | undefined> {
  try {
    return JSON.parse(await fs.readFile(p, 'utf8')) as T;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`${p} is not valid JSON: ${(e as Error).message}`);
  }
}

/** Make a tree writable by its owner so it can be removed (store paths are read-only). */
export async function makeWritable(p: string): Promise<void> {
  let st;
  try {
    st = await fs.lstat(p);
  } catch {
    return;
  }
  if (st.isSymbolicLink()) return;
  if (st.isDirectory()) {
    await fs.chmod(p, (st.mode & 0o7777) | 0o700);
    for (const name of await fs.readdir(p)) await makeWritable(path.join(p, name));
  }
}

export async function removeTree(p: string): Promise<void> {
  await makeWritable(p);
  await fs.rm(p, { recursive: true, force: true });
}

/** Every path under dir (not dir itself), parents before their children; symlinks are not followed. */
export async function listTree(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fs.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    out.push(p);
    if (e.isDirectory()) out.push(...(await listTree(p)));
  }
  return out;
}
