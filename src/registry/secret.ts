// The shared secret of the registration protocol: read from a file that only its owner may read
// or write (group/other bits set → refuse), trimmed of one trailing newline, at least 16 bytes.
import { readFileSync, statSync } from "node:fs";

import { LbError } from "../lib/errors.js";

export const MIN_SECRET_BYTES = 16;

export function readSecretFile(path: string): Buffer {
  let mode: number;
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new LbError("LB_ERR_CONFIG", `secret file ${path}: not a regular file`);
    mode = st.mode & 0o777;
  } catch (err) {
    if (err instanceof LbError) throw err;
    throw new LbError("LB_ERR_CONFIG", `secret file ${path}: ${(err as Error).message}`, { cause: err });
  }
  if ((mode & 0o077) !== 0) {
    throw new LbError(
      "LB_ERR_CONFIG",
      `secret file ${path} has mode ${mode.toString(8).padStart(4, "0")}: group and others must have no access`,
      { hint: `chmod 600 ${path}` },
    );
  }
  const raw = readFileSync(path);
  const end = raw.length > 0 && raw[raw.length - 1] === 0x0a ? raw.length - 1 : raw.length;
  const secret = raw.subarray(0, end);
  if (secret.length < MIN_SECRET_BYTES) {
    throw new LbError(
      "LB_ERR_CONFIG",
      `secret file ${path}: the secret is ${secret.length} bytes, at least ${MIN_SECRET_BYTES} are needed`,
      { hint: `make one with: head -c 32 /dev/urandom | base64 > ${path}; chmod 600 ${path}` },
    );
  }
  return Buffer.from(secret);
}
