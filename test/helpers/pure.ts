// Loaded into the process of every unit test file (scripts/run-tests.mjs): a unit test that starts
// a process, opens a connection or listens on a port fails right there, saying so, instead of
// quietly coming to depend on the host. Such a test belongs in test/integration/.
import childProcess from 'node:child_process';
import { syncBuiltinESMExports } from 'node:module';
import net from 'node:net';

const refuse = (what: string) => (): never => {
  throw new Error(`a unit test may not ${what}; a test that needs to belongs in test/integration/`);
};

// only where the test files run: the runner itself starts one process per file
if (process.env.NODE_TEST_CONTEXT) {
  const cp = childProcess as unknown as Record<string, unknown>;
  for (const f of ['spawn', 'spawnSync', 'exec', 'execSync', 'execFile', 'execFileSync', 'fork']) cp[f] = refuse(`start a process (child_process.${f})`);
  net.connect = net.createConnection = refuse('open a connection');
  net.Server.prototype.listen = refuse('listen on a port');
  // named imports of node:child_process and node:net see the replacements too
  syncBuiltinESMExports();
}
