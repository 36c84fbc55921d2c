// What a release tarball's entries may not do: name a place outside the destination, write through
// a link, or hold links that lead out of it when followed. Pure: the extractor keeps the tree it
// made in memory, so every check is a lookup, never a walk of the disk.
import path from 'node:path';

/** Absolute symlinks may point here: they name other store paths and are relocated later. */
const ALLOWED_ABSOLUTE_PREFIX = '/nix/store/';

export class Refusal extends Error {
  constructor(
    readonly entry: string,
    readonly reason: string,
  ) {
    super(`entry "${entry}" ${reason}`);
  }
}

/** Archive-relative path split into components; refuses absolute names and `..`. */
export function components(name: string, entry: string, what = 'name'): string[] {
  if (name.includes('\0')) throw new Refusal(entry, `has a NUL byte in its ${what}`);
  if (name.startsWith('/')) throw new Refusal(entry, `has an absolute ${what} (${name})`);
  const parts = name.split('/').filter((c) => c !== '' && c !== '.');
  if (parts.includes('..')) throw new Refusal(entry, `has a ".." component in its ${what} (${name}), which could reach outside the destination`);
  if (parts.length === 0) throw new Refusal(entry, `has an empty ${what}`);
  return parts;
}

export function checkSymlinkTarget(parts: string[], target: string, entry: string): void {
  if (target.includes('\0')) throw new Refusal(entry, 'has a NUL byte in its link target');
  if (target.startsWith('/')) {
    const norm = path.posix.normalize(target);
    if (!norm.startsWith(ALLOWED_ABSOLUTE_PREFIX) || norm.length === ALLOWED_ABSOLUTE_PREFIX.length) {
      throw new Refusal(entry, `is a symlink to ${target}, outside the tarball (only ${ALLOWED_ABSOLUTE_PREFIX}… is allowed)`);
    }
    return;
  }
  const resolved = path.posix.normalize(path.posix.join(...parts.slice(0, -1).concat(['.']), target));
  if (resolved === '..' || resolved.startsWith('../')) {
    throw new Refusal(entry, `is a symlink to ${target}, which resolves outside the tarball`);
  }
}

/** Where a path ends up: inside the extracted tree, or inside the (virtual) /nix/store. */
type Location = { tree: string[] } | { store: string[] };

/**
 * Resolves `target`, seen from the tree directory `from`, through the links of the extracted tree
 * (`links`: archive path → the target the archive gave). Each link passed the lexical check on its
 * own, but a chain (`b -> a/../..` with `a -> /nix/store/x`) could still end outside: links into
 * /nix/store continue in a virtual store, where climbing above the store is an escape too.
 */
function resolveIn(links: ReadonlyMap<string, string>, entry: string, from: string[], target: string, hops: number): Location {
  if (hops > 40) throw new Refusal(entry, 'is part of a symlink loop');
  let loc: Location = target.startsWith('/') ? { store: [] } : { tree: [...from] };
  const rest = target.startsWith('/') ? path.posix.normalize(target).slice(ALLOWED_ABSOLUTE_PREFIX.length) : target;
  for (const c of rest.split('/')) {
    if (c === '' || c === '.') continue;
    if ('store' in loc) {
      if (c !== '..') loc.store.push(c);
      else if (loc.store.pop() === undefined) throw new Refusal(entry, `resolves through other links to above ${ALLOWED_ABSOLUTE_PREFIX}`);
      continue;
    }
    if (c === '..') {
      if (loc.tree.pop() === undefined) throw new Refusal(entry, 'resolves through other links to outside the tarball');
      continue;
    }
    loc.tree.push(c);
    const link = links.get(loc.tree.join('/'));
    if (link !== undefined) loc = resolveIn(links, entry, loc.tree.slice(0, -1), link, hops + 1);
  }
  return loc;
}

/** Follows every link of the extracted tree to its end, refusing any that leaves it. */
export function checkAllLinks(links: ReadonlyMap<string, string>): void {
  for (const [rel, target] of links) resolveIn(links, rel, rel.split('/').slice(0, -1), target, 0);
}
