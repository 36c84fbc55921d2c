// Signing keys in the formats `nix-store --generate-binary-cache-key` writes: `name:base64`, the
// secret being the 32-byte ed25519 seed followed by the 32-byte public key, the public key 32 bytes.
// node:crypto signs ed25519 once the raw bytes are wrapped as a JWK.
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, sign, verify } from 'node:crypto';
import { RelonixError } from '../util/errors.ts';
import { fingerprint, type NarInfo } from './narinfo.ts';

export interface SecretKey {
  name: string;
  key: KeyObject;
  publicKey: string;
}

export interface PublicKey {
  name: string;
  key: KeyObject;
}

const b64url = (b: Buffer) => b.toString('base64url');

/**
 * A key name relonix makes keys with: what Nix's own names look like (`cache.nixos.org-1`), and a
 * safe file name, since keygen writes NAME.secret and NAME.public.
 */
const KEY_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function isKeyName(name: string): boolean {
  return KEY_NAME.test(name);
}

const KEY_HINT = 'pass the NAME.secret file written by `relonix keygen` or `nix-store --generate-binary-cache-key`';

/**
 * A secret key that is not one. Only where it came from and what is wrong are said: never a byte of
 * its text, not even the name before its colon (a file without one would show its seed there).
 */
export function badSecretKey(source: string, problem: string): RelonixError {
  return new RelonixError(`${source} is not a Nix secret key: ${problem}`, { kind: 'usage', hint: KEY_HINT });
}

/** A public key that is not one; its name is shown only when it is a plain key name. */
export function badPublicKey(name: string | undefined, problem: string): RelonixError {
  const which = name !== undefined && isKeyName(name) ? `the public key ${name}` : 'a public key';
  return new RelonixError(`${which} is not a Nix public key: ${problem}`, {
    kind: 'usage',
    hint: 'pass the content of a NAME.public file: NAME:BASE64 of 32 bytes',
  });
}

/** NAME:BASE64 split, or the problem with it (worded without any of its text). */
function splitKey(text: string): { name: string; bytes: Buffer } | { problem: string } {
  const s = text.trim();
  const i = s.indexOf(':');
  if (i <= 0) return { problem: 'it is not of the form NAME:BASE64 (no name before a colon)' };
  const body = s.slice(i + 1);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(body)) return { problem: 'the part after NAME: is not base64' };
  return { name: s.slice(0, i), bytes: Buffer.from(body, 'base64') };
}

/** A secret key from its text; `source` says where it came from in any error (a file name). */
export function parseSecretKey(text: string, source = 'the secret key'): SecretKey {
  const k = splitKey(text);
  if ('problem' in k) throw badSecretKey(source, k.problem);
  const { name, bytes } = k;
  if (bytes.length !== 64) throw badSecretKey(source, `it holds ${bytes.length} bytes; an ed25519 secret key holds 64`);
  const seed = bytes.subarray(0, 32);
  const pub = bytes.subarray(32);
  let key: KeyObject;
  let derived: Buffer;
  try {
    key = createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', d: b64url(seed), x: b64url(pub) }, format: 'jwk' });
    derived = Buffer.from(createPublicKey(key).export({ format: 'jwk' }).x ?? '', 'base64url');
  } catch {
    // node:crypto's own message is not shown: it is not worth the risk of it quoting the key
    throw badSecretKey(source, 'node:crypto does not take it as an ed25519 key');
  }
  // a secret whose two halves disagree would sign with a key nobody can verify
  if (!derived.equals(pub)) throw badSecretKey(source, 'its public half does not match its seed');
  return { name, key, publicKey: `${name}:${pub.toString('base64')}` };
}

export function parsePublicKey(text: string): PublicKey {
  const k = splitKey(text);
  if ('problem' in k) throw badPublicKey(undefined, k.problem);
  if (k.bytes.length === 64) throw badPublicKey(k.name, 'it is a secret key (64 bytes); pass the NAME.public half, and keep this one secret');
  if (k.bytes.length !== 32) throw badPublicKey(k.name, `it holds ${k.bytes.length} bytes; an ed25519 public key holds 32`);
  return { name: k.name, key: createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: b64url(k.bytes) }, format: 'jwk' }) };
}

export function generateKey(name: string): { secret: string; public: string } {
  if (!isKeyName(name)) {
    throw badKeyName(name);
  }
  const { privateKey } = generateKeyPairSync('ed25519');
  const jwk = privateKey.export({ format: 'jwk' });
  const seed = Buffer.from(jwk.d!, 'base64url');
  const pub = Buffer.from(jwk.x!, 'base64url');
  return { secret: `${name}:${Buffer.concat([seed, pub]).toString('base64')}`, public: `${name}:${pub.toString('base64')}` };
}

export function signNarInfo(n: NarInfo, k: SecretKey): string {
  return `${k.name}:${sign(null, Buffer.from(fingerprint(n)), k.key).toString('base64')}`;
}

/** The name of the trusted key whose signature on `n` checks out, or undefined. */
export function verifyNarInfo(n: NarInfo, trusted: PublicKey[]): string | undefined {
  const fp = Buffer.from(fingerprint(n));
  for (const s of n.sigs) {
    const i = s.indexOf(':');
    if (i <= 0) continue;
    const name = s.slice(0, i);
    const sig = Buffer.from(s.slice(i + 1), 'base64');
    if (sig.length !== 64) continue;
    for (const k of trusted) {
      if (k.name === name && verify(null, fp, k.key, sig)) return name;
    }
  }
  return undefined;
}

/** A name keygen cannot give a key (it is also the key files' name, so no / and no ..). */
export function badKeyName(name: string): RelonixError {
  return new RelonixError(`${JSON.stringify(name)} cannot be a key name`, {
    kind: 'usage',
    hint: 'use letters, digits, dots, dashes and underscores, starting with a letter or digit, at most 128 (e.g. cache.example.org-1)',
  });
}
