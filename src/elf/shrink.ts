// patchelf's --shrink-rpath: keep relative entries ($ORIGIN/...) and the directories that hold a
// needed library built for this file's machine; drop the rest.
import { closeSync, openSync, readSync } from 'node:fs';
import { peekMachine } from './peek.ts';
import { neededLibraries, type ParsedElf } from './reader.ts';

/** e_machine of the file at `p`, or undefined when it cannot be read or is not ELF. */
function machineOf(p: string): number | undefined {
  let fd: number;
  try {
    fd = openSync(p, 'r');
  } catch {
    return undefined;
  }
  try {
    const head = Buffer.alloc(20);
    return readSync(fd, head, 0, 20, 0) === 20 ? peekMachine(head) : undefined;
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

export function shrinkSearchPath(e: ParsedElf, rpath: string, allowedPrefixes: string[]): string {
  const needed = neededLibraries(e);
  const found = needed.map(() => false);
  const keep: string[] = [];
  for (const dir of rpath.split(':')) {
    if (dir === '') continue;
    if (dir[0] !== '/') {
      keep.push(dir);
      continue;
    }
    if (allowedPrefixes.length && !allowedPrefixes.some((p) => dir.startsWith(p))) continue;
    let hit = false;
    needed.forEach((lib, j) => {
      if (found[j] || machineOf(`${dir}/${lib}`) !== e.machine) return;
      found[j] = true;
      hit = true;
    });
    if (hit) keep.push(dir);
  }
  return keep.join(':');
}
