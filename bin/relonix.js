#!/usr/bin/env node
// Runs the TypeScript sources straight after `npm ci`: no build step to forget or to go stale.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli.ts');
await main(process.argv);
