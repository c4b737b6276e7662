// Progress for long work: a redrawn bar on a TTY, one plain line per update otherwise (logs, CI).

export interface Progress {
  update(done: number, detail?: string): void;
  done(detail?: string): void;
}

export function createProgress(label: string, total: number, stream: NodeJS.WriteStream = process.stderr): Progress {
  const tty = Boolean(stream.isTTY) && !process.env.CI;
  const width = 28;
  let last = '';
  const render = (done: number, detail: string): string => {
    const frac = total > 0 ? Math.min(1, done / total) : 0;
    const filled = Math.round(frac * width);
    return `${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total}${detail ? '  ' + detail : ''}`;
  };
  return {
    update(done, detail = '') {
      const line = render(done, detail);
      if (line === last) return;
      last = line;
      if (tty) stream.write(`\r\x1b[2K${line}`);
      else stream.write(`${line}\n`);
    },
    done(detail = '') {
      const line = render(total, detail);
      if (tty) stream.write(`\r\x1b[2K${line}\n`);
      else if (line !== last) stream.write(`${line}\n`);
    },
  };
}
