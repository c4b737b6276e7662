// Structured logging for the coordinator and the bank agent: one JSON object per line (for log
// shippers) or a compact human line. Never log tensors, rows or key material: callers pass ids,
// counts and codes only.

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFormat = 'json' | 'text';
export type LogFields = Record<string, string | number | boolean | null | undefined | string[] | number[]>;

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(event: string, fields?: LogFields): void;
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
  child(component: string): Logger;
}

export interface LoggerOptions {
  component: string;
  level?: LogLevel;
  format?: LogFormat;
  /** Where lines go; stderr by default so stdout stays free for command results. */
  write?: (line: string) => void;
}

export function createLogger(opts: LoggerOptions): Logger {
  const level = opts.level ?? ((process.env.FEDSYNTH_LOG_LEVEL as LogLevel | undefined) ?? 'info');
  const format = opts.format ?? ((process.env.FEDSYNTH_LOG_FORMAT as LogFormat | undefined) ?? 'text');
  const write = opts.write ?? ((line: string) => process.stderr.write(line + '\n'));
  const min = RANK[level] ?? RANK.info;

  const emit = (lvl: LogLevel, event: string, fields: LogFields = {}): void => {
    if (RANK[lvl] < min) return;
    const ts = new Date().toISOString();
    if (format === 'json') {
      write(JSON.stringify({ ts, level: lvl, component: opts.component, event, ...fields }));
    } else {
      const kv = Object.entries(fields)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(',') : v}`)
        .join(' ');
      write(`${ts} ${lvl.toUpperCase().padEnd(5)} [${opts.component}] ${event}${kv ? ' ' + kv : ''}`);
    }
  };

  return {
    debug: (e, f) => emit('debug', e, f),
    info: (e, f) => emit('info', e, f),
    warn: (e, f) => emit('warn', e, f),
    error: (e, f) => emit('error', e, f),
    child: (component) => createLogger({ ...opts, level, format, write, component: `${opts.component}/${component}` }),
  };
}

/** A logger that keeps lines in memory; tests read `lines` to assert what was logged. */
export function memoryLogger(component = 'test'): Logger & { lines: string[] } {
  const lines: string[] = [];
  const logger = createLogger({ component, level: 'debug', format: 'json', write: (l) => lines.push(l) });
  return Object.assign(logger, { lines });
}
