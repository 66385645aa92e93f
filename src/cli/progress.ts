/** A one-line progress display on a terminal, periodic plain lines otherwise (CI logs). */
export class Progress {
  private last = 0;
  private readonly tty: boolean;

  constructor(
    private readonly stream: NodeJS.WriteStream = process.stderr,
    private readonly everyMs = 5000,
  ) {
    this.tty = Boolean(stream.isTTY);
  }

  update(line: string, force = false): void {
    const now = Date.now();
    if (this.tty) {
      this.stream.write(
        `\r${line.slice(0, (this.stream.columns || 120) - 1).padEnd(Math.min(this.stream.columns || 120, 120) - 1)}`,
      );
    } else if (force || now - this.last >= this.everyMs) {
      this.stream.write(`${line}\n`);
      this.last = now;
    }
  }

  done(line?: string): void {
    if (this.tty) this.stream.write('\n');
    if (line) this.stream.write(`${line}\n`);
  }
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h ? `${h}h${String(m).padStart(2, '0')}m` : m ? `${m}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}
