// The one pino root logger: JSON, pretty on a TTY, to a file when asked; modules take
// child({ module }) loggers from it.
import pino, { type Logger } from "pino";

import { LOG_LEVELS, type LogLevel } from "../config/schema.js";

export type { LogLevel };

export function isLogLevel(text: string): text is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(text);
}

export function createLogger(opts: { level: LogLevel; file?: string | undefined }): Logger {
  if (opts.file)
    return pino({ level: opts.level }, pino.destination({ dest: opts.file, mkdir: true, sync: true }));
  if (process.stderr.isTTY) {
    return pino({
      level: opts.level,
      transport: { target: "pino-pretty", options: { destination: 2, translateTime: "SYS:HH:MM:ss.l" } },
    });
  }
  return pino({ level: opts.level }, pino.destination({ dest: 2, sync: true }));
}
