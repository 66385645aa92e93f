/**
 * How the pipeline reports while it works: log lines (notes, warnings) and a progress line that is
 * redrawn. Node passes a terminal / CI-log writer (src/cli/progress.ts), the browser a status element.
 */
export type Log = (line: string) => void;

export interface ProgressSink {
  /** the current state; `force` asks a non-terminal writer to print it even if it printed recently */
  update(line: string, force?: boolean): void;
  /** the progress line is finished (optionally with a last line) */
  done(line?: string): void;
}

/** A progress sink that shows nothing. */
export const NO_PROGRESS: ProgressSink = { update: () => {}, done: () => {} };
