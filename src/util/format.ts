/** Sizes as people read them in progress lines and errors. */
export function mib(n: number): string {
  return `${(n / (1024 * 1024)).toFixed(n < 10 * 1024 * 1024 ? 1 : 0)} MiB`;
}

/** MiB below a GiB, GiB with one decimal above: memory limits and free space. */
export function size(n: number): string {
  return n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(1)} GiB` : mib(n);
}
