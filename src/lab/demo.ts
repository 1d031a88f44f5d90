// `npm run demo`: a namespace lab with a balancer, a client and three backends, the daemon
// loaded from confs/simple_1.yaml, 1000 HTTP requests through the VIP, the spread, cleanup.
import { join } from "node:path";
import { packageRoot } from "../lib/paths.js";
import { Lab, uniquePrefix } from "./lab.js";

const REQUESTS = 1000;

async function main(): Promise<number> {
  const lab = new Lab(uniquePrefix(), 3);
  const stop = (): void => {
    void lab.down().finally(() => process.exit(130));
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  try {
    console.log(`demo: lab ${lab.prefix}: balancer, client, 3 backends (scripts/lab.sh)`);
    await lab.up();
    console.log(
      "demo: lbctl load --iface eth0 --mode native --config confs/simple_1.yaml (in the balancer's namespace)",
    );
    await lab.startDaemon({ mode: "native", config: join(packageRoot(), "confs", "simple_1.yaml") });
    console.log(
      `demo: ${REQUESTS} HTTP requests from the client to http://198.18.1.1/ (a new connection each)`,
    );
    const r = await lab.http("http://198.18.1.1/", REQUESTS);
    const stats = await lab.lbctl(["stats"]);
    console.log("");
    console.log("backend  requests  share");
    for (const name of Object.keys(r.byBackend).sort()) {
      const n = r.byBackend[name] ?? 0;
      console.log(
        `${name.padEnd(8)} ${String(n).padStart(8)}  ${((100 * n) / REQUESTS).toFixed(1).padStart(5)}%`,
      );
    }
    console.log(`failed   ${String(r.failed).padStart(8)}`);
    console.log("");
    console.log(stats.stdout.trimEnd());
    return r.failed === 0 ? 0 : 1;
  } finally {
    const code = await lab.stopDaemon();
    await lab.down();
    console.log(`demo: daemon stopped (exit ${code ?? "?"}), lab removed`);
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`demo: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
