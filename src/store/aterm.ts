// A derivation in the ATerm form Nix writes to `.drv` files:
// Derive([outputs],[inputDrvs],[inputSrcs],system,builder,[args],[env]).
// Strings hold bytes, one char a byte (latin1): any byte survives a round trip, and JavaScript's
// string order is then the byte order Nix sorts by.
import { RelonixError } from '../util/errors.ts';

export interface DerivationOutput {
  name: string;
  /** empty in a masked derivation (and in content-addressed ones) */
  path: string;
  /** `r:sha256`, `sha256`, … for a fixed output; empty otherwise */
  hashAlgo: string;
  /** hex; empty unless fixed */
  hash: string;
}

export interface DerivationInput {
  path: string;
  /** names of the outputs used, sorted */
  outputs: string[];
}

export interface Derivation {
  outputs: DerivationOutput[];
  inputDrvs: DerivationInput[];
  inputSrcs: string[];
  system: string;
  builder: string;
  args: string[];
  env: [string, string][];
}

/** Byte order (std::string comparison): valid for latin1 strings, one char a byte. */
export function byteOrder(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A .drv that does not parse as Nix's ATerm. */
export function drvNotATerm(at: number, what: string): RelonixError {
  return new RelonixError(`the derivation is not in Nix's ATerm form: ${what} at byte ${at}`, {
    kind: 'integrity',
    hint: 'pass a .drv file as Nix writes it (Derive(...)); a truncated or edited file cannot be translated',
  });
}

class Reader {
  pos = 0;
  constructor(readonly s: string) {}

  expect(lit: string): void {
    if (!this.s.startsWith(lit, this.pos)) throw drvNotATerm(this.pos, `expected ${JSON.stringify(lit)}`);
    this.pos += lit.length;
  }

  /** Consumes `c` when it is next. */
  eat(c: string): boolean {
    if (this.s[this.pos] !== c) return false;
    this.pos++;
    return true;
  }

  string(): string {
    this.expect('"');
    let out = '';
    let from = this.pos;
    for (;;) {
      const q = this.s.indexOf('"', this.pos);
      const bs = this.s.indexOf('\\', this.pos);
      if (q < 0) throw drvNotATerm(this.pos, 'unterminated string');
      if (bs < 0 || q < bs) {
        out += this.s.slice(from, q);
        this.pos = q + 1;
        return out;
      }
      if (bs + 1 >= this.s.length) throw drvNotATerm(bs, 'unterminated escape');
      const c = this.s[bs + 1]!;
      out += this.s.slice(from, bs) + (c === 'n' ? '\n' : c === 'r' ? '\r' : c === 't' ? '\t' : c);
      this.pos = from = bs + 2;
    }
  }

  list<T>(item: () => T): T[] {
    this.expect('[');
    const out: T[] = [];
    if (this.eat(']')) return out;
    do out.push(item());
    while (this.eat(','));
    this.expect(']');
    return out;
  }

  strings(): string[] {
    return this.list(() => this.string());
  }

  /** `(a,b,…)` of `n` strings */
  tuple(n: number): string[] {
    this.expect('(');
    const out = [this.string()];
    for (let i = 1; i < n; i++) {
      this.expect(',');
      out.push(this.string());
    }
    this.expect(')');
    return out;
  }
}

export function parseDerivation(bytes: Uint8Array): Derivation {
  const r = new Reader(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1'));
  if (r.s.startsWith('DrvWithVersion(')) throw drvNotATerm(0, 'a versioned derivation (dynamic derivations are not supported)');
  r.expect('Derive(');
  const outputs = r.list(() => {
    const [name, path, hashAlgo, hash] = r.tuple(4) as [string, string, string, string];
    return { name, path, hashAlgo, hash };
  });
  r.expect(',');
  const inputDrvs = r.list(() => {
    r.expect('(');
    const path = r.string();
    r.expect(',');
    const outs = r.strings();
    r.expect(')');
    return { path, outputs: outs };
  });
  r.expect(',');
  const inputSrcs = r.strings();
  r.expect(',');
  const system = r.string();
  r.expect(',');
  const builder = r.string();
  r.expect(',');
  const args = r.strings();
  r.expect(',');
  const env = r.list(() => r.tuple(2) as [string, string]);
  r.expect(')');
  if (r.pos !== r.s.length) throw drvNotATerm(r.pos, 'data after the end');
  return { outputs, inputDrvs, inputSrcs, system, builder, args, env };
}

const ESCAPES: Record<string, string> = { '"': '\\"', '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' };

function quote(s: string): string {
  return `"${s.replace(/["\\\n\r\t]/g, (c) => ESCAPES[c]!)}"`;
}

function list(items: string[]): string {
  return `[${items.join(',')}]`;
}

/** The ATerm text, one char a byte, in the order the fields hold (Nix writes them sorted). */
export function printAterm(d: Derivation): string {
  const outputs = d.outputs.map((o) => `(${quote(o.name)},${quote(o.path)},${quote(o.hashAlgo)},${quote(o.hash)})`);
  const inputs = d.inputDrvs.map((i) => `(${quote(i.path)},${list(i.outputs.map(quote))})`);
  const env = d.env.map(([k, v]) => `(${quote(k)},${quote(v)})`);
  return `Derive(${list(outputs)},${list(inputs)},${list(d.inputSrcs.map(quote))},${quote(d.system)},${quote(d.builder)},${list(d.args.map(quote))},${list(env)})`;
}

export function printDerivation(d: Derivation): Buffer {
  return Buffer.from(printAterm(d), 'latin1');
}
