// How a bootstrap shows itself: live progress on a terminal, a few plain lines in logs, or one JSON
// event per line for scripts.
import { emit } from '../util/emit.ts';
import type { UiMode } from '../util/ui-mode.ts';

/** One stage as the UI sees it: run it, learn whether it ran or was already done, and a summary. */
export interface UiStage {
  name: string;
  title: string;
  exec(progress: (text: string) => void): Promise<{ skipped: boolean; summary: string }>;
}

/**
 * Runs stages in order. TTY: listr2 with live progress. Plain: one line per stage and a few
 * progress lines (logs stay short). JSON: events only.
 */
export async function runStages(stages: UiStage[], mode: UiMode, out?: NodeJS.WriteStream): Promise<void> {
  if (mode === 'json') {
    for (const s of stages) {
      const t0 = Date.now();
      emit({ event: 'stage', stage: s.name, status: 'start' });
      let last = 0;
      const r = await s.exec((text) => {
        if (Date.now() - last < 500) return;
        last = Date.now();
        emit({ event: 'progress', stage: s.name, text });
      });
      emit({ event: 'stage', stage: s.name, status: r.skipped ? 'skipped' : 'done', summary: r.summary, ms: Date.now() - t0 });
    }
    return;
  }
  // loaded here: a no-op re-run, and every other command, starts without it
  const { Listr, ListrLogger, ProcessOutput } = await import('listr2');
  // a logger of its own only when the display goes elsewhere than stdout
  const logger = out ? { logger: new ListrLogger({ useIcons: true, processOutput: new ProcessOutput(out, process.stderr) }) } : {};
  const list = new Listr(
    stages.map((s) => ({
      title: s.title,
      task: async (_ctx: unknown, task: { output: string; title: string; skip(m?: string): void }) => {
        let last = 0;
        const t0 = Date.now();
        const r = await s.exec((text) => {
          // plain logs get a progress line at most every 5 s; a TTY redraws in place
          if (mode === 'plain' && Date.now() - last < 5000) return;
          last = Date.now();
          task.output = text;
        });
        if (r.skipped) task.skip(`${s.title}: already ${r.summary}`);
        else task.title = `${s.title}: ${r.summary} (${((Date.now() - t0) / 1000).toFixed(1)}s)`;
      },
    })),
    {
      concurrent: false,
      exitOnError: true,
      renderer: mode === 'tty' ? 'default' : 'simple',
      fallbackRenderer: 'simple',
      rendererOptions: mode === 'tty' ? { collapseSkips: false, showSkipMessage: true, ...logger } : logger,
      fallbackRendererOptions: logger,
      // errors are reported once, by the CLI, with their fix
      collectErrors: false,
      // and signals too (util/signals.ts): listr's own ends the process with 127
      registerSignalListeners: false,
    } as never,
  );
  await list.run();
}
