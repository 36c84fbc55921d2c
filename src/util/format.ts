/** Sizes as people read them in progress lines and errors. */
export function mib(n: number): string {
  return `${(n / (1024 * 1024)).toFixed(n < 10 * 1024 * 1024 ? 1 : 0)} MiB`;
}
