// The one small interface every binary cache target implements (targets.ts opens them), so publish,
// restore and gc never care whether a cache is a directory, an HTTP origin or an S3 bucket.

export interface CacheTarget {
  /** the URL as given, for messages */
  readonly url: string;
  has(key: string): Promise<boolean>;
  /** the object, or undefined when it does not exist */
  get(key: string): Promise<Buffer | undefined>;
  /** a small object (narinfo, nix-cache-info, relonix.json) */
  put(key: string, data: Buffer, contentType: string): Promise<void>;
  /**
   * an object streamed from a local file of `size` bytes whose sha256 is `sha256hex` (NARs): nothing
   * of its size is held in memory. Each call reads the file afresh, so a retry is just another call.
   */
  putFile(key: string, file: string, size: number, sha256hex: string, contentType: string): Promise<void>;
  delete(key: string): Promise<void>;
  /** every key in the cache; targets that cannot list leave it out */
  list?(): Promise<string[]>;
  /** the object as a stream, or undefined when it does not exist: NARs never have to fit in memory */
  openRead?(key: string): Promise<AsyncIterable<Uint8Array> | undefined>;
  /** for http(s) targets: the URL of a key and the headers to fetch it with (resumable downloads) */
  httpSource?(key: string): { url: string; headers: Record<string, string> };
}
