// The statistics every bench reports: one definition, so two benches' medians mean the same thing.

/** The middle value (the upper of the two middles for an even count); the input is left as it is. */
export function median(xs: number[]): number {
  if (xs.length === 0) throw new Error('median of no values');
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}
