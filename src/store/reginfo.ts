// The `nix-store --load-db` / `--dump-db` registration format, one record per path.
export interface RegInfo {
  path: string;
  narHash: string;
  narSize: number;
  deriver: string;
  references: string[];
}

export function parseRegInfo(text: string, source = '.reginfo'): RegInfo[] {
  const lines = text.split('\n');
  const out: RegInfo[] = [];
  let i = 0;
  const next = (what: string) => {
    if (i >= lines.length) throw new Error(`${source}: truncated, expected ${what} at line ${i + 1}`);
    return lines[i++]!;
  };
  while (i < lines.length) {
    if (lines[i] === '' && i === lines.length - 1) break;
    const p = next('a store path');
    if (!p.startsWith('/')) throw new Error(`${source}: line ${i}: "${p}" is not an absolute store path`);
    const narHash = next('a NAR hash');
    const sizeText = next('a NAR size');
    const narSize = Number(sizeText);
    if (!Number.isSafeInteger(narSize) || narSize < 0) throw new Error(`${source}: line ${i}: bad NAR size "${sizeText}"`);
    const deriver = next('a deriver');
    const countText = next('a reference count');
    const count = Number(countText);
    if (!Number.isSafeInteger(count) || count < 0) throw new Error(`${source}: line ${i}: bad reference count "${countText}"`);
    const references: string[] = [];
    for (let r = 0; r < count; r++) references.push(next('a reference'));
    out.push({ path: p, narHash, narSize, deriver, references });
  }
  return out;
}

export function formatRegInfo(records: RegInfo[]): string {
  let s = '';
  for (const r of records) {
    s += `${r.path}\n${r.narHash}\n${r.narSize}\n${r.deriver}\n${r.references.length}\n`;
    for (const ref of r.references) s += `${ref}\n`;
  }
  return s;
}
