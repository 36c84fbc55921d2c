/** A word for sh: as it is when it holds nothing the shell reads specially, else single-quoted. */
export function shQuote(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** A word for fish: single-quoted, with the backslashes and quotes fish reads inside them escaped. */
export function fishQuote(s: string): string {
  return `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}
