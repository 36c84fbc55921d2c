// XXH64 (seed 0), which zstd frames carry the low half of as their content checksum. In 32-bit
// halves: BigInt would be several times slower.
let rh = 0;
let rl = 0;

/** (ah:al) * (bh:bl) mod 2^64 → rh:rl */
function mul(ah: number, al: number, bh: number, bl: number): void {
  const a0 = al & 0xffff;
  const a1 = al >>> 16;
  const b0 = bl & 0xffff;
  const b1 = bl >>> 16;
  const p00 = a0 * b0;
  const p01 = a0 * b1;
  const p10 = a1 * b0;
  const mid = (p00 >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  rl = (((mid & 0xffff) << 16) | (p00 & 0xffff)) >>> 0;
  const carry = a1 * b1 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16);
  rh = (carry + Math.imul(ah, bl) + Math.imul(al, bh)) >>> 0;
}

/** (ah:al) + (bh:bl) mod 2^64 → rh:rl */
function add(ah: number, al: number, bh: number, bl: number): void {
  const lo = al + bl;
  rl = lo >>> 0;
  rh = (ah + bh + (lo > 0xffffffff ? 1 : 0)) >>> 0;
}

/** rotate (h:l) left by r (0 < r < 32) → rh:rl */
function rotl(h: number, l: number, r: number): void {
  rh = ((h << r) | (l >>> (32 - r))) >>> 0;
  rl = ((l << r) | (h >>> (32 - r))) >>> 0;
}

const P1H = 0x9e3779b1,
  P1L = 0x85ebca87;
const P2H = 0xc2b2ae3d,
  P2L = 0x27d4eb4f;
const P3H = 0x165667b1,
  P3L = 0x9e3779f9;
const P4H = 0x85ebca77,
  P4L = 0xc2b2ae63;
const P5H = 0x27d4eb2f,
  P5L = 0x165667c5;

export class Xxh64 {
  // four accumulators, hi and lo
  private v = new Uint32Array(8);
  private buf = new Uint8Array(32);
  private held = 0;
  private total = 0;
  constructor() {
    this.reset();
  }
  reset(): void {
    const v = this.v;
    add(P1H, P1L, P2H, P2L);
    v[0] = rh;
    v[1] = rl;
    v[2] = P2H;
    v[3] = P2L;
    v[4] = 0;
    v[5] = 0;
    // 0 - P1
    add(~P1H >>> 0, ~P1L >>> 0, 0, 1);
    v[6] = rh;
    v[7] = rl;
    this.held = 0;
    this.total = 0;
  }
  private stripe(d: Uint8Array, at: number): void {
    const v = this.v;
    for (let k = 0; k < 4; k++) {
      const o = at + k * 8;
      const ll = (d[o]! | (d[o + 1]! << 8) | (d[o + 2]! << 16) | (d[o + 3]! << 24)) >>> 0;
      const lh = (d[o + 4]! | (d[o + 5]! << 8) | (d[o + 6]! << 16) | (d[o + 7]! << 24)) >>> 0;
      mul(lh, ll, P2H, P2L);
      add(v[2 * k]!, v[2 * k + 1]!, rh, rl);
      // rotl 31
      rotl(rh, rl, 31);
      mul(rh, rl, P1H, P1L);
      v[2 * k] = rh;
      v[2 * k + 1] = rl;
    }
  }
  update(d: Uint8Array): void {
    let i = 0;
    this.total += d.length;
    if (this.held) {
      const n = Math.min(32 - this.held, d.length);
      this.buf.set(d.subarray(0, n), this.held);
      this.held += n;
      i = n;
      if (this.held < 32) return;
      this.stripe(this.buf, 0);
      this.held = 0;
    }
    for (; i + 32 <= d.length; i += 32) this.stripe(d, i);
    if (i < d.length) {
      this.buf.set(d.subarray(i), 0);
      this.held = d.length - i;
    }
  }
  /** the low 32 bits of the digest (what a zstd frame stores) */
  digestLow32(): number {
    return this.digest()[1];
  }
  /** The four accumulators merged into one (an input of 32 bytes or more), left in rh:rl. */
  private merge(): void {
    const v = this.v;
    rotl(v[0]!, v[1]!, 1);
    let ah = rh,
      al = rl;
    rotl(v[2]!, v[3]!, 7);
    add(ah, al, rh, rl);
    ah = rh;
    al = rl;
    rotl(v[4]!, v[5]!, 12);
    add(ah, al, rh, rl);
    ah = rh;
    al = rl;
    rotl(v[6]!, v[7]!, 18);
    add(ah, al, rh, rl);
    ah = rh;
    al = rl;
    for (let k = 0; k < 4; k++) {
      // mergeRound: acc ^= round(0, v); acc = acc * P1 + P4
      mul(v[2 * k]!, v[2 * k + 1]!, P2H, P2L);
      rotl(rh, rl, 31);
      mul(rh, rl, P1H, P1L);
      ah = (ah ^ rh) >>> 0;
      al = (al ^ rl) >>> 0;
      mul(ah, al, P1H, P1L);
      add(rh, rl, P4H, P4L);
      ah = rh;
      al = rl;
    }
    rh = ah;
    rl = al;
  }

  digest(): [number, number] {
    let hh: number;
    let hl: number;
    if (this.total >= 32) {
      this.merge();
      hh = rh;
      hl = rl;
    } else {
      hh = P5H;
      hl = P5L;
    }
    // + total length (below 2^53)
    add(hh, hl, Math.floor(this.total / 0x100000000) >>> 0, this.total >>> 0);
    hh = rh;
    hl = rl;
    const b = this.buf;
    let i = 0;
    const n = this.held;
    for (; i + 8 <= n; i += 8) {
      const ll = (b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24)) >>> 0;
      const lh = (b[i + 4]! | (b[i + 5]! << 8) | (b[i + 6]! << 16) | (b[i + 7]! << 24)) >>> 0;
      mul(lh, ll, P2H, P2L);
      rotl(rh, rl, 31);
      mul(rh, rl, P1H, P1L);
      hh = (hh ^ rh) >>> 0;
      hl = (hl ^ rl) >>> 0;
      rotl(hh, hl, 27);
      mul(rh, rl, P1H, P1L);
      add(rh, rl, P4H, P4L);
      hh = rh;
      hl = rl;
    }
    if (i + 4 <= n) {
      const w = (b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24)) >>> 0;
      mul(0, w, P1H, P1L);
      hh = (hh ^ rh) >>> 0;
      hl = (hl ^ rl) >>> 0;
      rotl(hh, hl, 23);
      mul(rh, rl, P2H, P2L);
      add(rh, rl, P3H, P3L);
      hh = rh;
      hl = rl;
      i += 4;
    }
    for (; i < n; i++) {
      mul(0, b[i]!, P5H, P5L);
      hh = (hh ^ rh) >>> 0;
      hl = (hl ^ rl) >>> 0;
      rotl(hh, hl, 11);
      mul(rh, rl, P1H, P1L);
      hh = rh;
      hl = rl;
    }
    // avalanche
    hl = (hl ^ (hh >>> 1)) >>> 0; // h ^= h >> 33
    mul(hh, hl, P2H, P2L);
    hh = rh;
    hl = rl;
    hl = (hl ^ ((hl >>> 29) | (hh << 3))) >>> 0;
    hh = (hh ^ (hh >>> 29)) >>> 0; // h ^= h >> 29
    mul(hh, hl, P3H, P3L);
    hh = rh;
    hl = rl;
    hl = (hl ^ hh) >>> 0; // h ^= h >> 32
    return [hh, hl];
  }
}
