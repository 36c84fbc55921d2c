// Emits a layout the planner reserved (plan/): the bytes of the edited file. Either a new buffer
// holding all of it, or, for a caller that writes only what changed, the parsed buffer edited
// below its old end plus the appended segment on its own, with the changed ranges listed.
import { type ClassLayout, ehdrSpan, type Io, setEhdr } from './layout.ts';
import { planLayout } from './plan/planner.ts';
import type { EditPlan, ElfEdits, Layout } from './plan/types.ts';
import type { DynEntry, ParsedElf } from './reader.ts';

/** Writes into the output, remembering which ranges below the old end changed and how. */
class Out {
  private readonly dirty: Array<[number, number]> = [];
  private readonly fresh: Array<[number, number]> = [];
  private readonly preIo: Io;
  private readonly segIo?: Io;
  constructor(
    readonly l: ClassLayout,
    readonly pre: Buffer,
    readonly seg: Buffer | undefined,
    readonly segAt: number,
  ) {
    this.preIo = l.io(pre);
    if (seg) this.segIo = l.io(seg);
  }
  /** The buffer, accessor and offset in it that file offset `at` lands in. */
  private target(at: number): { buf: Buffer; io: Io; o: number; inSeg: boolean } {
    if (this.seg && at >= this.segAt) return { buf: this.seg, io: this.segIo!, o: at - this.segAt, inSeg: true };
    return { buf: this.pre, io: this.preIo, o: at, inSeg: false };
  }
  private touch(at: number, end: number, fresh: boolean, inSeg: boolean): void {
    if (!inSeg) (fresh ? this.fresh : this.dirty).push([at, end]);
  }
  bytes(at: number, data: Buffer, room: number, fresh: boolean): void {
    const t = this.target(at);
    data.copy(t.buf, t.o);
    t.buf.fill(0, t.o + data.length, t.o + room);
    this.touch(at, at + room, fresh, t.inSeg);
  }
  /** Fields of one structure; `span` the range to count as changed. */
  fields(at: number, fresh: boolean, span: [number, number], write: (io: Io, o: number) => void): void {
    const t = this.target(at);
    write(t.io, t.o);
    this.touch(span[0], span[1], fresh, t.inSeg);
  }
  ranges(which: 'dirty' | 'fresh'): Array<[number, number]> {
    return merge(which === 'dirty' ? this.dirty : this.fresh);
  }
}

function merge(list: Array<[number, number]>): Array<[number, number]> {
  const r = [...list].sort((x, y) => x[0] - y[0]);
  const out: Array<[number, number]> = [];
  for (const [a, b] of r) {
    const last = out[out.length - 1];
    if (last && a <= last[1]) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out;
}

/** The buffer a whole-file output is built in: the old content (shifted where asked) and zeros. */
function wholeBuffer(e: ParsedElf, layout: Layout, total: number): Buffer {
  const base = layout.segment?.base ?? e.buf.length;
  const out = Buffer.allocUnsafe(total);
  const s = layout.shift;
  if (s) {
    e.buf.copy(out, 0, 0, s.at);
    out.fill(0, s.at, s.at + s.by);
    e.buf.copy(out, s.at + s.by, s.at, base);
    out.fill(0, base + s.by);
  } else {
    e.buf.copy(out, 0, 0, base);
    out.fill(0, base);
  }
  return out;
}

function writeDyn(l: ClassLayout, io: Io, at: number, entries: DynEntry[], slots: number): void {
  for (let i = 0; i < slots; i++) l.dyn.write(io, at + i * l.dyn.size, entries[i] ?? { tag: 0, val: 0 });
}

/** Emit `layout`. With `mutate`, the parsed buffer itself receives the changes below its old end. */
export function emit(e: ParsedElf, layout: Layout, mutate: boolean): EditPlan {
  const l = e.layout;
  const seg = layout.segment;
  const total = seg ? seg.offset + seg.size : e.buf.length;
  const inPlace = mutate && !layout.shift && (!seg || seg.base === e.buf.length);
  let pre: Buffer;
  let segBuf: Buffer | undefined;
  if (inPlace) {
    pre = e.buf;
    if (seg) segBuf = Buffer.alloc(seg.size);
  } else {
    pre = seg || layout.shift ? wholeBuffer(e, layout, total) : Buffer.from(e.buf);
  }
  const out = new Out(l, pre, segBuf, seg ? seg.offset : Infinity);
  if (layout.table) {
    const t = layout.table;
    out.fields(0, false, ehdrSpan(l, 'phoff', 'phnum'), (io) => {
      setEhdr(l, io, 'phoff', t.offset);
      setEhdr(l, io, 'phnum', layout.phdrs.length);
      if (layout.shift && e.shoff >= layout.shift.at) setEhdr(l, io, 'shoff', e.shoff + layout.shift.by);
    });
    const size = layout.phdrs.length * l.phdr.size;
    out.fields(t.offset, t.fresh, [t.offset, t.offset + size], (io, o) => {
      for (const [i, p] of layout.phdrs.entries()) l.phdr.write(io, o + i * l.phdr.size, p);
    });
  }
  const { dyn, interp, str } = layout;
  if (dyn) {
    out.fields(dyn.offset, dyn.fresh, [dyn.offset, dyn.offset + dyn.slots * l.dyn.size], (io, o) => writeDyn(l, io, o, dyn.entries, dyn.slots));
  }
  if (interp) out.bytes(interp.offset, interp.bytes, interp.room, interp.fresh);
  if (str) out.bytes(str.offset, str.bytes, str.bytes.length, str.fresh);
  const shoff = layout.shift && e.shoff >= layout.shift.at ? e.shoff + layout.shift.by : e.shoff;
  for (const u of layout.sections) {
    const at = shoff + u.index * l.shdr.size;
    const span: [number, number] = u.addr !== undefined ? [l.shdr.span(at, 'addr')[0], l.shdr.span(at, 'size')[1]] : l.shdr.span(at, 'offset');
    out.fields(at, false, span, (io, o) => l.shdr.write(io, o, { addr: u.addr, offset: u.offset, size: u.size }));
  }
  if (!inPlace) {
    return seg || layout.shift ? { pre, base: total, dirty: [[0, total]], off0: -1 } : { pre, base: e.buf.length, dirty: out.ranges('dirty'), off0: -1 };
  }
  const plan: EditPlan = { pre, base: e.buf.length, dirty: out.ranges('dirty'), off0: seg ? seg.offset : -1 };
  const fresh = out.ranges('fresh');
  if (fresh.length) plan.fresh = fresh;
  if (segBuf) plan.seg = segBuf;
  return plan;
}

/**
 * Compute an edit, or null when nothing changes. With `mutate`, the parsed buffer itself receives
 * the changes below its end and the appended segment comes separately, so a bulk caller can write
 * only what changed.
 */
export function planEdit(e: ParsedElf, edits: ElfEdits, mutate: boolean): EditPlan | null {
  const layout = planLayout(e, edits);
  return layout ? emit(e, layout, mutate) : null;
}

/** The edited file as one new buffer, or null when nothing changes. The input is not modified. */
export function editParsed(e: ParsedElf, edits: ElfEdits): Buffer | null {
  const plan = planEdit(e, edits, false);
  if (!plan) return null;
  return plan.pre.length === plan.base ? plan.pre : plan.pre.subarray(0, plan.base);
}
