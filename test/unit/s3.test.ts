// SigV4 as relonix computes it, checked against two of the AWS SigV4 test suite's vectors
// (get-vanilla, post-vanilla) with the suite's credentials and date.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { signedAuth } from '../helpers/sigv4.ts';

test('SigV4: relonix reproduces the AWS test vectors get-vanilla and post-vanilla', async () => {
  const dt = '20150830T123600Z';
  assert.equal(
    await signedAuth('GET', 'https://example.amazonaws.com/', {}, undefined, 'service', dt),
    'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31',
  );
  assert.equal(
    await signedAuth('POST', 'https://example.amazonaws.com/', {}, undefined, 'service', dt),
    'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b',
  );
});
