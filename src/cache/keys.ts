// Signing keys in the formats `nix-store --generate-binary-cache-key` writes: `name:base64`, the
// secret being the 32-byte ed25519 seed followed by the 32-byte public key, the public key 32 bytes.
// node:crypto signs ed25519 once the raw bytes are wrapped as a JWK.
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, sign, verify } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { RelonixError } from '../util/errors.ts';
import { writeFileAtomic } from '../util/fs.ts';
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

function splitKey(text: string, what: string): { name: string; bytes: Buffer } {
  const s = text.trim();
  const i = s.indexOf(':');
  if (i <= 0) throw new RelonixError(`${what} "${s.slice(0, 40)}…" is not of the form name:base64`, { kind: 'usage' });
  const body = s.slice(i + 1);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(body)) throw new RelonixError(`${what} ${s.slice(0, i)} is not base64`, { kind: 'usage' });
  return { name: s.slice(0, i), bytes: Buffer.from(body, 'base64') };
}

export function parseSecretKey(text: string): SecretKey {
  const { name, bytes } = splitKey(text, 'secret key');
  if (bytes.length !== 64) {
    throw new RelonixError(`secret key ${name} has ${bytes.length} bytes; an ed25519 secret key has 64`, {
      kind: 'usage',
      hint: 'pass the NAME.secret file written by `relonix keygen` or `nix-store --generate-binary-cache-key`',
    });
  }
  const seed = bytes.subarray(0, 32);
  const pub = bytes.subarray(32);
  const key = createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', d: b64url(seed), x: b64url(pub) }, format: 'jwk' });
  // a secret whose two halves disagree would sign with a key nobody can verify
  const derived = Buffer.from(createPublicKey(key).export({ format: 'jwk' }).x!, 'base64url');
  if (!derived.equals(pub)) throw new RelonixError(`secret key ${name}: its public half does not match its seed`, { kind: 'usage' });
  return { name, key, publicKey: `${name}:${pub.toString('base64')}` };
}

export function parsePublicKey(text: string): PublicKey {
  const { name, bytes } = splitKey(text, 'public key');
  if (bytes.length !== 32) throw new RelonixError(`public key ${name} has ${bytes.length} bytes; an ed25519 public key has 32`, { kind: 'usage' });
  return { name, key: createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: b64url(bytes) }, format: 'jwk' }) };
}

export function generateKey(name: string): { secret: string; public: string } {
  if (!name || name.includes(':') || /\s/.test(name)) throw new RelonixError(`"${name}" cannot be a key name (no colon, no spaces)`, { kind: 'usage' });
  const { privateKey } = generateKeyPairSync('ed25519');
  const jwk = privateKey.export({ format: 'jwk' });
  const seed = Buffer.from(jwk.d!, 'base64url');
  const pub = Buffer.from(jwk.x!, 'base64url');
  return { secret: `${name}:${Buffer.concat([seed, pub]).toString('base64')}`, public: `${name}:${pub.toString('base64')}` };
}

/** Writes NAME.secret (0600) and NAME.public, refusing to overwrite an existing secret. */
export async function writeKeyPair(name: string, outDir: string): Promise<{ secretFile: string; publicFile: string; publicKey: string }> {
  const k = generateKey(name);
  const secretFile = path.join(outDir, `${name}.secret`);
  const publicFile = path.join(outDir, `${name}.public`);
  try {
    await fs.access(secretFile);
    throw new RelonixError(`${secretFile} already exists`, { hint: 'choose another --name or --out; relonix never overwrites a secret key' });
  } catch (e) {
    if (e instanceof RelonixError) throw e;
  }
  await writeFileAtomic(secretFile, k.secret, 0o600);
  await writeFileAtomic(publicFile, k.public, 0o644);
  return { secretFile, publicFile, publicKey: k.public };
}

export async function readSecretKeyFile(file: string): Promise<SecretKey> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (e) {
    throw new RelonixError(`cannot read the secret key ${file}: ${(e as Error).message}`, {
      kind: 'usage',
      hint: 'create one with `relonix keygen --name NAME --out DIR`',
    });
  }
  return parseSecretKey(text);
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
