// src/cache/: binary caches as Nix reads them: narinfo, signing keys, targets (file, http, s3),
// push (publish), substitute (restore), gc, the manifest naming each system's Nix.
//
// Where a binary cache lives: a directory (file://), an HTTP origin that takes PUT (WebDAV, as
// Nix's own http store writes) or an S3 bucket (SigV4, path-style against an endpoint). One small
// interface so publish, restore and gc never care which.
import { pathToFileURL } from 'node:url';
import { RelonixError } from '../util/errors.ts';
import { redactUrl } from '../util/redact.ts';
import type { CacheTarget } from './target.ts';
import { FileTarget } from './target-file.ts';
import { HttpTarget, type TargetOptions } from './target-http.ts';
import { S3Target } from './target-s3.ts';

export type { CacheTarget } from './target.ts';
export type { TargetOptions } from './target-http.ts';

export function openTarget(url: string, opts: TargetOptions = {}): CacheTarget {
  if (url.startsWith('file://')) return new FileTarget(url);
  if (url.startsWith('http://') || url.startsWith('https://')) return new HttpTarget(url, opts);
  if (url.startsWith('s3://')) return new S3Target(url);
  if (url.startsWith('/')) return new FileTarget(pathToFileURL(url).href);
  throw unsupportedCacheUrl(url);
}

/** A cache URL of a scheme relonix does not write or read. */
export function unsupportedCacheUrl(url: string): RelonixError {
  return new RelonixError(`unsupported cache URL ${redactUrl(url)}`, {
    kind: 'usage',
    hint: 'use file:///dir, http(s)://host/path or s3://bucket?endpoint=…&region=…',
  });
}
