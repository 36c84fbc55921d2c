// SigV4 signatures made with the AWS SigV4 test suite's credentials: the vectors published with
// that suite, and botocore's signer, must give the same Authorization header for the same request.
import { createHash } from 'node:crypto';
import { signV4 } from '../../src/net/sigv4.ts';

export const AKID = 'AKIDEXAMPLE';
export const SECRET = 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY';

/** The Authorization header relonix signs a request with, in us-east-1 at `datetime`. */
export async function signedAuth(method: string, url: string, headers: Record<string, string>, body: string | undefined, service: string, datetime: string) {
  const payloadSha256 = createHash('sha256')
    .update(body ?? '')
    .digest('hex');
  return signV4({ method, url, headers, payloadSha256, accessKeyId: AKID, secretAccessKey: SECRET, service, region: 'us-east-1', datetime }).authorization!;
}
