/**
 * A compressed stream that cannot be decoded (corrupt, truncated, not that format), or a host
 * compressor that failed. The codec layer's own type: the layer that took the stream from the user
 * or a server says what it means (a damaged cache object, a tarball to download again).
 */
export class CodecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CodecError';
  }
}
