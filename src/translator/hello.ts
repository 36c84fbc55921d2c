// Is the server on the translator's port ours? Anything may hold a loopback port; only the prefix's
// own server has its secret key, so it answers a fresh nonce with a signature the client checks
// against the prefix's public key. (A server that is not ours gets nothing from Nix either: every
// narinfo Nix takes from the URL must be signed with that same key.)
import { createPublicKey, randomBytes, sign, verify } from 'node:crypto';
import http from 'node:http';
import type { SecretKey } from '../cache/keys.ts';

export const HELLO_PATH = '/.relonix/hello';

export interface Hello {
  prefix: string;
  storeDir: string;
  /** base64 ed25519 signature of helloText(prefix, nonce) */
  sig: string;
}

function helloText(prefix: string, nonce: string): Buffer {
  return Buffer.from(`relonix-translator;${prefix};${nonce}`);
}

export function answerHello(prefix: string, storeDir: string, nonce: string, key: SecretKey): Hello {
  return { prefix, storeDir, sig: sign(null, helloText(prefix, nonce), key.key).toString('base64') };
}

/** What answers on the port: 'ours', 'other' (something else holds it), or 'none' (nothing listens). */
export async function whoListens(port: number, prefix: string, key: SecretKey, timeoutMs = 3000): Promise<'ours' | 'other' | 'none'> {
  const nonce = randomBytes(16).toString('hex');
  let body: string;
  try {
    body = await get(`http://127.0.0.1:${port}${HELLO_PATH}?nonce=${nonce}`, timeoutMs);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ECONNREFUSED' ? 'none' : 'other';
  }
  try {
    const h = JSON.parse(body) as Hello;
    const ok = h.prefix === prefix && verify(null, helloText(prefix, nonce), createPublicKey(key.key), Buffer.from(h.sig, 'base64'));
    return ok ? 'ours' : 'other';
  } catch {
    return 'other';
  }
}

/** Why a hello got no usable answer: whoListens says 'other' for it, and nothing else sees it. */
class NoHello extends Error {}

function get(url: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: timeoutMs }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        text += d;
        if (text.length > 4096) req.destroy(new NoHello('answer too long'));
      });
      res.on('end', () => (res.statusCode === 200 ? resolve(text) : reject(new NoHello(`HTTP ${res.statusCode}`))));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new NoHello('no answer')));
    req.on('error', reject);
  });
}
