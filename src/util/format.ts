/** Sizes as people read them in progress lines and errors. */
export function mib(n: number): string {
  return `${(n / (1024 * 1024)).toFixed(n < 10 * 1024 * 1024 ? 1 : 0)} MiB`;
}

/** MiB below a GiB, GiB with one decimal above: memory limits and free space. */
export function size(n: number): string {
  return n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(1)} GiB` : mib(n);
}

/** A number of seconds as the largest whole units: `1h`, `1h30m`, `90s`, `2d`. */
export function duration(seconds: number): string {
  const units: [string, number][] = [
    ['d', 86_400],
    ['h', 3600],
    ['m', 60],
    ['s', 1],
  ];
  let left = Math.round(seconds);
  const parts: string[] = [];
  for (const [u, n] of units) {
    if (left >= n) {
      parts.push(`${Math.floor(left / n)}${u}`);
      left %= n;
    }
  }
  return parts.join('') || '0s';
}
