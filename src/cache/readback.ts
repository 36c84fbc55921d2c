// Reading back what a publish put in a cache, before anything names it: a server that answers an
// upload with 2xx and keeps nothing (or something else) would otherwise leave relonix.json, and
// every restore after it, pointing at a hole. Narinfos are read by GET, NARs checked by HEAD and size.
import { RelonixError } from '../util/errors.ts';
import { type NarInfo, narInfoKey, parseNarInfo } from './narinfo.ts';
import type { CacheTarget } from './target.ts';

/** What the cache holds is not what was uploaded to it, or not all a published closure needs. */
export function notStored(url: string, key: string, problem: string): RelonixError {
  return new RelonixError(`${url}/${key} ${problem}`, {
    kind: 'failure',
    hint: 'check that the server keeps what it is sent (a GET after a PUT returns it) and that no cache gc removed it meanwhile, then publish again',
  });
}

/**
 * Checks that the cache serves `storePath`: its narinfo (the one `written`, when this run wrote it)
 * and a NAR of the size it names.
 */
export async function readBack(t: CacheTarget, storePath: string, written?: NarInfo): Promise<void> {
  const key = narInfoKey(storePath);
  const body = await t.get(key);
  const uploaded = written ? ' after it was uploaded with success: the server does not keep what it is sent' : '';
  if (!body) throw notStored(t.url, key, `is missing${uploaded}`);
  let ni: NarInfo;
  try {
    ni = parseNarInfo(body.toString('utf8'), `${t.url}/${key}`);
  } catch {
    throw notStored(t.url, key, `is not a narinfo${uploaded}`);
  }
  const same = written
    ? ni.storePath === written.storePath && ni.url === written.url && ni.narHash === written.narHash && ni.fileSize === written.fileSize
    : ni.storePath === storePath;
  if (!same) throw notStored(t.url, key, `is not the narinfo of ${storePath} that was uploaded`);
  const nar = await t.stat(ni.url);
  if (!nar) throw notStored(t.url, ni.url, `is missing, which ${key} names${uploaded}`);
  if (nar.size !== undefined && ni.fileSize !== undefined && nar.size !== ni.fileSize) {
    throw notStored(t.url, ni.url, `holds ${nar.size} bytes, not the ${ni.fileSize} ${key} names`);
  }
}
