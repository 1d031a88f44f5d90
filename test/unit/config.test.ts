// Config files: every example in confs/ loads, defaults apply, and each class of error is
// reported as "FILE:LINE:COL: PATH: message", all of them at once.
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { loadConfigFile, parseConfig } from "../../src/config/load.js";
import { formatVip } from "../../src/core/vip-syntax.js";
import { AF_INET, AF_INET6, addressToString } from "../../src/lib/addr.js";
import { LbError } from "../../src/lib/errors.js";
import { packageRoot } from "../../src/lib/paths.js";

const FILE = "confs/x.yaml";

/** The error lines parseConfig reports for `text`; fails the test when it accepts it. */
function errorLines(text: string): string[] {
  try {
    parseConfig(text, FILE);
  } catch (err) {
    assert.ok(err instanceof LbError, String(err));
    assert.equal(err.code, "LB_ERR_CONFIG");
    return err.message.split("\n");
  }
  return assert.fail(`accepted:\n${text}`);
}

/** Exactly one error per expectation, in file order: each line starts with the prefix and holds the fragment. */
function assertErrors(
  text: string,
  expected: readonly (readonly [prefix: string, fragment: string])[],
): void {
  const lines = errorLines(text);
  assert.equal(lines.length, expected.length, `errors:\n${lines.join("\n")}`);
  for (const [i, [prefix, fragment]] of expected.entries()) {
    const line = lines[i] ?? "";
    assert.ok(
      line.startsWith(`${FILE}:${prefix}`),
      `line ${i} "${line}" should start with "${FILE}:${prefix}"`,
    );
    assert.ok(line.includes(fragment), `line ${i} "${line}" should hold "${fragment}"`);
  }
}

const yaml = (...lines: string[]): string => lines.join("\n") + "\n";

void test("every example in confs/ loads and has at least one VIP", () => {
  const dir = join(packageRoot(), "confs");
  const files = readdirSync(dir).filter((f) => /\.ya?ml$/.test(f));
  assert.ok(files.includes("simple_1.yaml"), "confs/simple_1.yaml exists");
  for (const f of files) {
    const config = loadConfigFile(join(dir, f));
    assert.ok(config.desired.vips.length > 0, f);
  }
});

void test("simple_1.yaml: three backends with the default weight, encap port and hash", () => {
  const config = loadConfigFile(join(packageRoot(), "confs", "simple_1.yaml"));
  assert.deepEqual(config.settings, {});
  const [vip, ...rest] = config.desired.vips;
  assert.equal(rest.length, 0);
  assert.ok(vip !== undefined);
  assert.equal(formatVip(vip.vip), "tcp/198.18.1.1:80");
  assert.equal(vip.hash, "5tuple");
  assert.deepEqual(
    vip.backends.map((b) => [addressToString(b.address), b.encapPort, b.weight, "name" in b]),
    [
      ["198.18.0.11", 6080, 1, false],
      ["198.18.0.12", 6080, 1, false],
      ["198.18.0.13", 6080, 1, false],
    ],
  );
});

void test("fields convert: hash, weight, name, encap port from either key, mixed families, settings", () => {
  const config = parseConfig(
    yaml(
      "vips:",
      "  - vip: UDP/[2001:DB8:1::1]:53",
      "    hash: src-ip-port",
      "    backends:",
      "      - { address: 198.18.0.11:7000, weight: 0, name: b1 }",
      '      - { address: "[2001:db8::12]:7001", encap_port: 7001 }',
      "      - { address: 2001:db8::13, encap_port: 7002 }",
      "  - vip: tcp/198.18.1.3:0",
      "    backends:",
      "settings: { maglev_size: 257, log_level: debug, log_file: /tmp/lb.log }",
    ),
    FILE,
  );
  assert.equal(config.file, FILE);
  assert.deepEqual(config.settings, { maglevSize: 257, logLevel: "debug", logFile: "/tmp/lb.log" });
  const [v6, wildcard] = config.desired.vips;
  assert.ok(v6 !== undefined && wildcard !== undefined);
  assert.equal(formatVip(v6.vip), "udp/[2001:db8:1::1]:53");
  assert.equal(v6.hash, "src-ip-port");
  assert.deepEqual(
    v6.backends.map((b) => [b.address.family, addressToString(b.address), b.encapPort, b.weight, b.name]),
    [
      [AF_INET, "198.18.0.11", 7000, 0, "b1"],
      [AF_INET6, "2001:db8::12", 7001, 1, undefined],
      [AF_INET6, "2001:db8::13", 7002, 1, undefined],
    ],
  );
  assert.equal(wildcard.vip.port, 0);
  assert.deepEqual(wildcard.backends, []);
});

void test("an empty file, a comments-only file and empty lists are valid configs without VIPs", () => {
  for (const text of ["", "# nothing yet\n", "vips:\n", "vips: []\nsettings:\n", "---\n"]) {
    const config = parseConfig(text, FILE);
    assert.deepEqual(config.desired, { vips: [] }, JSON.stringify(text));
    assert.deepEqual(config.settings, {}, JSON.stringify(text));
  }
});

void test("unknown top-level key", () => {
  assertErrors(yaml("vips: []", "setings:", "  log_level: info"), [
    ["2:1: setings: ", "unknown key (expected one of vips, settings)"],
  ]);
});

void test("unknown VIP key", () => {
  assertErrors(yaml("vips:", "  - vip: tcp/198.18.1.1:80", "    hsah: src-ip"), [
    ["3:5: vips[0].hsah: ", "unknown key (expected one of vip, hash, backends, health)"],
  ]);
});

void test("unknown backend key", () => {
  assertErrors(
    yaml(
      "vips:",
      "  - vip: tcp/198.18.1.1:80",
      "    backends:",
      "      - { address: 198.18.0.11, wieght: 2 }",
    ),
    [
      [
        "4:33: vips[0].backends[0].wieght: ",
        "unknown key (expected one of address, weight, name, encap_port, health)",
      ],
    ],
  );
});

void test("unknown settings key", () => {
  assertErrors(yaml("settings:", "  maglev: 65537"), [["2:3: settings.maglev: ", "unknown key"]]);
});

void test("bad VIP syntax", () => {
  assertErrors(
    yaml(
      "vips:",
      "  - vip: tcp/1.2.3.4",
      "  - vip: sctp/198.18.1.1:80",
      "  - vip: tcp/2001:db8:1::1:80",
      "  - vip: tcp/198.18.1.1:65536",
      "  - vip: 80",
    ),
    [
      ["2:10: vips[0].vip: ", 'bad VIP "tcp/1.2.3.4": expected PROTO/ADDR:PORT, e.g. tcp/198.18.1.1:80'],
      ["3:10: vips[1].vip: ", 'protocol "sctp" is not tcp or udp'],
      ["4:10: vips[2].vip: ", "an IPv6 address must be in brackets"],
      ["5:10: vips[3].vip: ", 'port "65536" is not an integer 0..65535'],
      ["6:10: vips[4].vip: ", "expected a VIP, PROTO/ADDR:PORT, e.g. tcp/198.18.1.1:80, got 80"],
    ],
  );
});

void test("missing VIP points at the map that lacks it", () => {
  assertErrors(yaml("vips:", "  - hash: src-ip"), [["2:5: vips[0].vip: ", "required key is missing"]]);
});

void test("bad hash", () => {
  assertErrors(yaml("vips:", "  - vip: tcp/198.18.1.1:80", "    hash: round-robin"), [
    ["3:11: vips[0].hash: ", 'expected one of 5tuple, src-ip, src-ip-port, got "round-robin"'],
  ]);
});

void test("bad weight: string, negative, float, too big", () => {
  assertErrors(
    yaml(
      "vips:",
      "  - vip: tcp/198.18.1.1:80",
      "    backends:",
      "      - { address: 198.18.0.11, weight: two }",
      "      - { address: 198.18.0.12, weight: -1 }",
      "      - { address: 198.18.0.13, weight: 1.5 }",
      "      - address: 198.18.0.14",
      "        weight: 65536",
    ),
    [
      ["4:41: vips[0].backends[0].weight: ", 'expected an integer 0..65535, got "two"'],
      ["5:41: vips[0].backends[1].weight: ", "expected an integer 0..65535, got -1"],
      ["6:41: vips[0].backends[2].weight: ", "expected an integer 0..65535, got 1.5"],
      ["8:17: vips[0].backends[3].weight: ", "expected an integer 0..65535, got 65536"],
    ],
  );
});

void test("bad backend address", () => {
  assertErrors(
    yaml(
      "vips:",
      "  - vip: tcp/198.18.1.1:80",
      "    backends:",
      "      - address: 198.18.0",
      "      - address: 198.18.0.12:0",
      "      - address: [2001:db8::13]",
      "      - weight: 2",
    ),
    [
      ["4:18: vips[0].backends[0].address: ", 'bad backend address "198.18.0": "198.18.0" is not an IPv4'],
      ["5:18: vips[0].backends[1].address: ", 'encap port "0" is not an integer 1..65535'],
      [
        "6:18: vips[0].backends[2].address: ",
        'got a list (quote a bracketed IPv6 address: "[2001:db8::11]:6080")',
      ],
      ["7:9: vips[0].backends[3].address: ", "required key is missing"],
    ],
  );
});

void test("duplicate VIP, however it is spelled", () => {
  assertErrors(
    yaml(
      "vips:",
      "  - vip: tcp/198.18.1.1:80",
      "  - vip: udp/198.18.1.1:80",
      "  - vip: TCP/198.18.1.1:80",
      "  - vip: tcp/[2001:db8:1::1]:80",
      "  - vip: tcp/[2001:DB8:1:0:0::1]:80",
    ),
    [
      ["4:10: vips[2].vip: ", "duplicate VIP tcp/198.18.1.1:80 (first at vips[0])"],
      ["6:10: vips[4].vip: ", "duplicate VIP tcp/[2001:db8:1::1]:80 (first at vips[3])"],
    ],
  );
});

void test("duplicate backend address within a VIP, whatever its encap port", () => {
  assertErrors(
    yaml(
      "vips:",
      "  - vip: tcp/198.18.1.1:80",
      "    backends:",
      "      - address: 198.18.0.11",
      "      - address: 198.18.0.12",
      "      - address: 198.18.0.11:7000",
      "  - vip: tcp/198.18.1.2:80",
      "    backends:",
      "      - address: 198.18.0.11 # another VIP: not a duplicate",
    ),
    [
      [
        "6:18: vips[0].backends[2].address: ",
        "duplicate backend 198.18.0.11 in this VIP (first at vips[0].backends[0])",
      ],
    ],
  );
});

void test("bad maglev_size: not prime, out of range, not an integer", () => {
  for (const [value, got] of [
    ["65536", "65536"],
    ["251", "251"],
    ["1048583", "1048583"],
    ["big", '"big"'],
  ] as const) {
    assertErrors(yaml("settings:", `  maglev_size: ${value}`), [
      ["2:16: settings.maglev_size: ", `expected a prime 257..1048573, e.g. 65537, got ${got}`],
    ]);
  }
});

void test("bad log_level and log_file", () => {
  assertErrors(yaml("settings:", "  log_level: verbose", "  log_file: caplance.log"), [
    ["2:14: settings.log_level: ", 'expected one of fatal, error, warn, info, debug, trace, got "verbose"'],
    ["3:13: settings.log_file: ", 'expected an absolute path, got "caplance.log"'],
  ]);
});

void test("YAML syntax error", () => {
  assertErrors(yaml("vips:", "  - vip: tcp/198.18.1.1:80", " backends: []"), [
    ["3:1: ", "YAML syntax error: All mapping items must start at the same column"],
  ]);
  assertErrors(yaml("vips: []", "vips: []"), [["2:1: ", "YAML syntax error: Map keys must be unique"]]);
});

void test("YAML syntax error from an unquoted bracketed address carries a quoting hint", () => {
  const text = yaml(
    "vips:",
    "  - vip: tcp/198.18.1.1:80",
    "    backends:",
    "      - address: [2001:db8::11]:6080",
  );
  assertErrors(text, [["4:32: ", "YAML syntax error: Unexpected scalar at node end (quote values holding"]]);
  assert.throws(
    () => parseConfig(text, FILE),
    (err: unknown) => err instanceof LbError && err.hint?.includes("[2001:db8::11]:6080") === true,
  );
});

void test("wrong types: vips not a list, a VIP not a map, backends not a list, the file not a map", () => {
  assertErrors(yaml("vips: tcp/198.18.1.1:80"), [
    ["1:7: vips: ", 'expected a list of VIPs, got "tcp/198.18.1.1:80"'],
  ]);
  assertErrors(yaml("vips:", "  - tcp/198.18.1.1:80"), [
    ["2:5: vips[0]: ", "expected a VIP map with keys vip, hash"],
  ]);
  assertErrors(yaml("vips:", "  - vip: tcp/198.18.1.1:80", "    backends: 198.18.0.11"), [
    ["3:15: vips[0].backends: ", 'expected a list of backends, got "198.18.0.11"'],
  ]);
  assertErrors(yaml("- vips"), [["1:1: ", "expected a map with keys vips, settings, got a list"]]);
});

void test("encap_port conflicting with the port in ADDR:PORT", () => {
  assertErrors(
    yaml(
      "vips:",
      "  - vip: tcp/198.18.1.1:80",
      "    backends:",
      "      - { address: 198.18.0.11:7000, encap_port: 7000 } # the same port: fine",
      "      - { address: 198.18.0.12:7000, encap_port: 6080 }",
    ),
    [
      [
        "5:50: vips[0].backends[1].encap_port: ",
        '6080 conflicts with the encap port 7000 in address "198.18.0.12:7000"',
      ],
    ],
  );
});

void test("every error in the file is reported, in file order", () => {
  const lines = errorLines(
    yaml(
      "vips:",
      "  - vip: tcp/198.18.1.1:80",
      "    backends:",
      "      - { address: 198.18.0.11, weight: 1.5 }",
      "      - { address: 198.18.0.12:7000, weight: 1.5, encap_port: 6080 }",
      "  - vip: tcp/198.18.1.1:80",
      "    colour: blue",
      "settings: { maglev_size: 100 }",
    ),
  );
  assert.deepEqual(
    lines.map((l) => l.split(": ")[0]),
    [`${FILE}:4:41`, `${FILE}:5:46`, `${FILE}:5:63`, `${FILE}:6:10`, `${FILE}:7:5`, `${FILE}:8:26`],
  );
});

void test("an unreadable file is a config error naming it", () => {
  assert.throws(
    () => loadConfigFile("/nonexistent/caplance.yaml"),
    (err: unknown) =>
      err instanceof LbError &&
      err.code === "LB_ERR_CONFIG" &&
      err.message === "/nonexistent/caplance.yaml: cannot read config file: ENOENT" &&
      err.errno === 2,
  );
});

void test("docs/config.md: its YAML examples load, or give exactly the errors it shows", () => {
  const doc = readFileSync(join(packageRoot(), "docs", "config.md"), "utf8");
  const blocks = [...doc.matchAll(/```(\w*)\n([\s\S]*?)```(?:\n\ngives:\n\n```\n([\s\S]*?)```)?/g)];
  const yamlBlocks = blocks.filter((m) => m[1] === "yaml");
  assert.ok(yamlBlocks.length >= 2, "docs/config.md has YAML examples");
  let withErrors = 0;
  for (const [, , text = "", shown] of yamlBlocks) {
    if (shown === undefined) {
      parseConfig(text, "docs.yaml");
      continue;
    }
    withErrors++;
    assert.throws(
      () => parseConfig(text, "bad.yaml"),
      (err: unknown) => err instanceof LbError && err.message === shown.trimEnd(),
    );
  }
  assert.equal(withErrors, 1, "one example shows its errors");
});

void test("health: defaults, the VIP's port, http settings, absent for VIPs without checks", () => {
  const config = parseConfig(
    yaml(
      "vips:",
      "  - vip: tcp/198.18.1.1:80",
      "    health: {}",
      "  - vip: udp/198.18.1.2:53",
      "    health: { type: http, port: 8080, path: /healthz, expect_status: 204, interval_ms: 200,",
      "              timeout_ms: 150, rise: 1, fall: 2 }",
      "  - vip: tcp/198.18.1.3:443",
    ),
    FILE,
  );
  assert.deepEqual(Object.fromEntries(config.health), {
    "tcp/198.18.1.1:80": {
      type: "tcp",
      port: 80,
      path: "/",
      expectStatus: 200,
      intervalMs: 1000,
      timeoutMs: 1000,
      rise: 2,
      fall: 3,
    },
    "udp/198.18.1.2:53": {
      type: "http",
      port: 8080,
      path: "/healthz",
      expectStatus: 204,
      intervalMs: 200,
      timeoutMs: 150,
      rise: 1,
      fall: 2,
    },
  });
});

void test("health errors: unknown key, ranges, port needed for UDP and port 0, http-only keys", () => {
  assertErrors(
    yaml(
      "vips:",
      "  - vip: tcp/198.18.1.1:80",
      "    health:",
      "      type: icmp",
      "      intervall_ms: 100",
      "      fall: 0",
      "      path: healthz",
      "  - vip: udp/198.18.1.2:53",
      "    health: { type: tcp }",
      "  - vip: tcp/198.18.1.3:0",
      "    health:",
      "      interval_ms: 50",
      "  - vip: tcp/198.18.1.4:80",
      "    health: { path: /x, expect_status: 200 }",
    ),
    [
      ["4:13: vips[0].health.type: ", 'expected one of tcp, http, https, none, got "icmp"'],
      ["5:7: vips[0].health.intervall_ms: ", "unknown key (expected one of type, port, path"],
      ["6:13: vips[0].health.fall: ", "expected an integer 1..100, got 0"],
      ["7:13: vips[0].health.path: ", 'expected an HTTP path starting with "/"'],
      ["9:13: vips[1].health: ", "port is required for a UDP VIP"],
      ["12:7: vips[2].health: ", "port is required for a port-0 VIP"],
      ["12:20: vips[2].health.interval_ms: ", "expected an integer 100..3600000, got 50"],
      ["14:15: vips[3].health.path: ", "applies to types http and https only (type is tcp)"],
      ["14:25: vips[3].health.expect_status: ", "applies to types http and https only"],
    ],
  );
});

void test("health per backend: its keys over the VIP's; alone without VIP checks; type none and https", () => {
  const config = parseConfig(
    yaml(
      "vips:",
      "  - vip: tcp/198.18.1.1:443",
      "    health: { type: https, path: /healthz, interval_ms: 500 }",
      "    backends:",
      "      - address: 198.18.0.11",
      "      - { address: 198.18.0.12, health: { port: 8443, fall: 5 } }",
      "      - { address: 198.18.0.13, health: { type: none } }",
      "  - vip: udp/198.18.1.2:53",
      "    backends:",
      "      - { address: '[2001:db8::11]:7000', health: { type: tcp, port: 53 } }",
    ),
    FILE,
  );
  const vip = config.health.get("tcp/198.18.1.1:443");
  assert.deepEqual(vip, {
    type: "https",
    port: 443,
    path: "/healthz",
    expectStatus: 200,
    intervalMs: 500,
    timeoutMs: 1000,
    rise: 2,
    fall: 3,
  });
  assert.deepEqual(
    [...config.healthOverrides.keys()],
    ["tcp/198.18.1.1:443 198.18.0.12", "tcp/198.18.1.1:443 198.18.0.13", "udp/198.18.1.2:53 2001:db8::11"],
  );
  assert.deepEqual(config.healthOverrides.get("tcp/198.18.1.1:443 198.18.0.12"), {
    ...vip,
    port: 8443,
    fall: 5,
  });
  assert.equal(config.healthOverrides.get("tcp/198.18.1.1:443 198.18.0.13")?.type, "none");
  assert.equal(config.healthOverrides.get("udp/198.18.1.2:53 2001:db8::11")?.port, 53);
  assert.equal(config.health.has("udp/198.18.1.2:53"), false, "the VIP itself has no checks");
});

void test("health per backend errors: a port for UDP, http-only keys on tcp and none, unknown keys", () => {
  assertErrors(
    yaml(
      "vips:",
      "  - vip: udp/198.18.1.2:53",
      "    backends:",
      "      - { address: 198.18.0.11, health: { type: http } }",
      "      - { address: 198.18.0.12, health: { type: none } }",
      "  - vip: tcp/198.18.1.1:80",
      "    health: { type: tcp }",
      "    backends:",
      "      - { address: 198.18.0.11, health: { path: /x } }",
      "      - { address: 198.18.0.12, health: { type: none, expect_status: 200 } }",
      "      - { address: 198.18.0.13, health: { colour: blue } }",
    ),
    [
      ["4:41: vips[0].backends[0].health: ", "port is required for a UDP VIP"],
      ["9:43: vips[1].backends[0].health.path: ", "applies to types http and https only (type is tcp)"],
      ["10:55: vips[1].backends[1].health.expect_status: ", "(type is none)"],
      ["11:43: vips[1].backends[2].health.colour: ", "unknown key"],
    ],
  );
});
