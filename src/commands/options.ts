// The options several commands take, worded once so their --help never disagrees.
import { DEFAULT_PREFIX } from '../prefix/layout.ts';

export const PREFIX_HELP = `the prefix (default $RELONIX_PREFIX, else ${DEFAULT_PREFIX})`;

export const HEADER_HELP = "extra HTTP header 'Name: value' (repeatable)";

/** commander's argument parser for an option given more than once: every value, in order. */
export const repeatable = (v: string, prev: string[]): string[] => [...prev, v];
