// The plumbing shared by the dashboard's browser tests (dashboard_test.mjs,
// dashboard_tokens_test.mjs): their command line, the ok/FAIL reporter, and
// waiting for a surge-server child's port file, and the headless browser.
import fs from 'node:fs';
import { chromium } from 'playwright-core';

// --server BIN --cli BIN --source DIR --out DIR (each required; exit 2 without).
export function parseArgs(argv) {
  const args = Object.fromEntries(argv.reduce((acc, a, i, all) =>
    (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []));
  for (const k of ['server', 'cli', 'source', 'out']) {
    if (!args[k]) { console.error(`missing --${k}`); process.exit(2); }
  }
  return args;
}

// check(name, ok, detail) prints one result; `failed` and `count` add them up.
export function checker() {
  const t = { failed: 0, count: 0 };
  t.check = (name, ok, detail = '') => {
    t.count++;
    if (!ok) t.failed++;
    console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${detail ? ` (${detail})` : ''}`);
  };
  return t;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The number in `file` once the server wrote it; throws when `child` exits or
// `ms` pass first.
export async function waitForFile(file, child, ms) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (child.exitCode !== null) throw new Error(`surge-server exited with ${child.exitCode}`);
    try { const t = fs.readFileSync(file, 'utf8'); if (t.trim()) return Number(t); } catch {}
    await sleep(20);
  }
  throw new Error(`timeout waiting for ${file}`);
}

// Debian's Chromium, headless, with a profile in `profileDir` ($CHROMIUM overrides the binary).
export function launchBrowser(profileDir) {
  return chromium.launchPersistentContext(profileDir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1360, height: 900 },
  });
}
