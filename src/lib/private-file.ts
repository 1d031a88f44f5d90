// A credential read from a file only its owner may read or write (group/other bits set → refuse),
// as ssh does with keys: the REST API's bearer token (--api-token-file).
import { readFileSync, statSync } from "node:fs";

import { LbError } from "./errors.js";

export const MIN_TOKEN_BYTES = 16;

/** The file's text without trailing whitespace; `what` names it in errors ("API token file"). */
export function readPrivateFile(path: string, what: string): string {
  let mode: number;
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new LbError("LB_ERR_CONFIG", `${what} ${path}: not a regular file`);
    mode = st.mode & 0o777;
  } catch (err) {
    if (err instanceof LbError) throw err;
    throw new LbError("LB_ERR_CONFIG", `${what} ${path}: ${(err as Error).message}`, { cause: err });
  }
  if ((mode & 0o077) !== 0) {
    throw new LbError(
      "LB_ERR_CONFIG",
      `${what} ${path} has mode ${mode.toString(8).padStart(4, "0")}: group and others must have no access`,
      { hint: `chmod 600 ${path}` },
    );
  }
  return readFileSync(path, "utf8").trimEnd();
}

/** A bearer token: at least 16 visible ASCII characters (it travels in an HTTP header). */
export function readTokenFile(path: string): string {
  const token = readPrivateFile(path, "API token file");
  const make = `make one with: head -c 32 /dev/urandom | base64 > ${path}; chmod 600 ${path}`;
  if (!/^[\x21-\x7e]*$/.test(token)) {
    throw new LbError("LB_ERR_CONFIG", `API token file ${path}: the token must be visible ASCII, one line`, {
      hint: make,
    });
  }
  if (token.length < MIN_TOKEN_BYTES) {
    throw new LbError(
      "LB_ERR_CONFIG",
      `API token file ${path}: the token is ${token.length} characters, at least ${MIN_TOKEN_BYTES} are needed`,
      { hint: make },
    );
  }
  return token;
}
