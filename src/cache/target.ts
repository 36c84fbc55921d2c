// The one small interface every binary cache target implements (targets.ts opens them), so publish,
// restore and gc never care whether a cache is a directory, an HTTP origin or an S3 bucket.

/** An object a listing found: its size, when it was last written (when the store says), and for a file cache what it is if not a regular file. */
export interface CacheObject {
  key: string;
  size: number;
  modified?: Date;
  /** set for what a file cache holds that is no regular file (a symlink, a FIFO): never read or deleted */
  notRegular?: string;
}

export interface CacheTarget {
  /** the URL for messages, with any credentials in it masked */
  readonly url: string;
  has(key: string): Promise<boolean>;
  /** the object's size (undefined when the store does not say), or undefined when it does not exist */
  stat(key: string): Promise<{ size?: number } | undefined>;
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
  /** every object in the cache; targets that cannot list leave it out */
  list?(): Promise<CacheObject[]>;
  /** the object as a stream, or undefined when it does not exist: NARs never have to fit in memory */
  openRead?(key: string): Promise<AsyncIterable<Uint8Array> | undefined>;
  /**
   * for a cache that is a directory on this machine: the regular file behind `key` (its directory
   * checked to be inside the cache, as every read is), or undefined when there is none
   */
  localFile?(key: string): Promise<string | undefined>;
  /** for http(s) targets: the URL of a key and the headers to fetch it with (resumable downloads) */
  httpSource?(key: string): { url: string; headers: Record<string, string> };
}
