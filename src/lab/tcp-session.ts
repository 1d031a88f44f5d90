// Lab client: one long-lived TCP connection to a backend's name service through the VIP.
// Each line on stdin asks once over the same connection; each answer is one JSON line on
// stdout: { ok: true, name } or { ok: false, error }.
//   node dist/test/support/tcp-session.js ADDRESS PORT
import { connect } from "node:net";
import { createInterface } from "node:readline";

const [address = "", portText = "8080"] = process.argv.slice(2);
const socket = connect({ host: address, port: Number(portText) });
const answers: ((line: string) => void)[] = [];
let closed: string | undefined;
let buffered = "";

const out = (v: object): void => {
  process.stdout.write(`${JSON.stringify(v)}\n`);
};

socket.setEncoding("utf8");
socket.on("data", (chunk: string) => {
  buffered += chunk;
  let nl: number;
  while ((nl = buffered.indexOf("\n")) >= 0) {
    const line = buffered.slice(0, nl);
    buffered = buffered.slice(nl + 1);
    answers.shift()?.(line);
  }
});
socket.on("error", (err) => {
  closed = err.message;
});
socket.on("close", () => {
  closed ??= "connection closed";
  for (const answer of answers.splice(0)) answer("");
});

createInterface({ input: process.stdin }).on("line", () => {
  if (closed !== undefined) {
    out({ ok: false, error: closed });
    return;
  }
  const timer = setTimeout(() => {
    answers.shift();
    out({ ok: false, error: "no answer within 2000 ms" });
  }, 2000);
  answers.push((line) => {
    clearTimeout(timer);
    if (line === "") out({ ok: false, error: closed ?? "closed" });
    else out({ ok: true, name: line.trim() });
  });
  socket.write("who\n");
});
