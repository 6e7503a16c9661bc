// The page in the real browser: playwright-core drives Debian's Chromium (/usr/bin/chromium, which
// setup installs; no browser is ever downloaded), headless, in a fresh profile. Every page opened
// here is watched: each request and websocket it makes must go to its hub (the test asserts no
// other host is asked anything), and every uncaught error is kept for the test to assert on.
// Screenshots go to dist/test-output/ui/.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { repoRoot } from './lab.js';

export const CHROMIUM = '/usr/bin/chromium';
export const SCREENSHOTS = join(repoRoot, 'dist', 'test-output', 'ui');

const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

const open = new Set<{ close(): Promise<void> }>();
after(async () => {
  for (const b of open) await b.close().catch(() => {});
});

export interface WatchedPage {
  page: Page;
  context: BrowserContext;
  /** Every URL the page asked for (HTTP and websocket), in order. */
  requests: string[];
  /** Requests to anything but the hub's origin (blob: and data: URLs are the page's own). */
  foreign: () => string[];
  /** Uncaught errors (pageerror) and console errors. */
  errors: string[];
  consoleErrors: string[];
  shot(name: string): Promise<string>;
  close(): Promise<void>;
}

/** Opens `url` (the hub's page) in a fresh headless Chromium. */
export async function openPage(url: string, opts: { width?: number; height?: number; colorScheme?: 'light' | 'dark' } = {}): Promise<WatchedPage> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run \`npm run setup\` as root (it installs Debian's chromium package)`);
  mkdirSync(SCREENSHOTS, { recursive: true });
  const profile = mkdtempSync(join(tmpdir(), 'vxtrace-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    viewport: { width: opts.width ?? 1280, height: opts.height ?? 900 },
    colorScheme: opts.colorScheme ?? 'light',
    acceptDownloads: true,
    serviceWorkers: 'block',
  });
  const origin = new URL(url).origin;
  const wsOrigin = origin.replace(/^http/, 'ws');
  const requests: string[] = [];
  const errors: string[] = [];
  const consoleErrors: string[] = [];
  context.on('request', (r) => requests.push(r.url()));
  const page = context.pages()[0] ?? (await context.newPage());
  page.on('websocket', (ws) => requests.push(ws.url()));
  page.on('pageerror', (e) => errors.push(`${e.name}: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text());
  });
  const handle: WatchedPage = {
    page,
    context,
    requests,
    foreign: () => requests.filter((u) => !u.startsWith(`${origin}/`) && !u.startsWith(`${wsOrigin}/`) && !u.startsWith('blob:') && !u.startsWith('data:')),
    errors,
    consoleErrors,
    async shot(name) {
      const path = join(SCREENSHOTS, `${name}.png`);
      await page.screenshot({ path, fullPage: true });
      // A page much taller than the window is also saved in window-sized parts, to be looked at closely.
      const { width, height } = page.viewportSize()!;
      const full = await page.evaluate(() => (globalThis as any).document.documentElement.scrollHeight as number);
      if (full > height * 1.5) {
        for (let i = 0, y = 0; y < full; i++, y += height) {
          await page.screenshot({ path: join(SCREENSHOTS, `${name}.part${i + 1}.png`), fullPage: true, clip: { x: 0, y, width, height: Math.min(height, full - y) } });
        }
      }
      return path;
    },
    async close() {
      open.delete(handle);
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
  open.add(handle);
  await page.goto(url);
  return handle;
}

/** The processes of the browsers this test process started (its descendants running Chromium). */
export function browserPids(): number[] {
  const children = new Map<number, number[]>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(d)]);
    } catch {
      /* gone meanwhile */
    }
  }
  const out: number[] = [];
  const visit = (pid: number) => {
    for (const c of children.get(pid) ?? []) {
      try {
        if (readlinkSync(`/proc/${c}/exe`).includes('chromium')) out.push(c);
      } catch {
        /* gone meanwhile */
      }
      visit(c);
    }
  };
  visit(process.pid);
  return out;
}

/** Resolves when the page says it is live (subscribed at the hub). */
export async function waitLive(p: WatchedPage, timeoutMs = 20_000): Promise<void> {
  await p.page.locator('[data-testid=connection][data-state=live]').waitFor({ timeout: timeoutMs });
}

/** Every control has a name a screen reader can say. Returns the ones that do not. */
export async function unnamedControls(page: Page): Promise<string[]> {
  // Runs in the page (the browser's DOM, which this program's types do not include).
  return page.evaluate(() => {
    const doc = (globalThis as any).document;
    const out: string[] = [];
    for (const el of doc.querySelectorAll('button, input, select, textarea, [role=grid], [tabindex]:not([tabindex="-1"])')) {
      const labelled = el.getAttribute('aria-labelledby')?.split(' ').map((id: string) => doc.getElementById(id)?.textContent ?? '').join(' ');
      const labels = el.labels ? [...el.labels].map((l: any) => l.textContent ?? '').join(' ') : '';
      const name = (el.getAttribute('aria-label') ?? '') || (labelled ?? '') || labels || (el.tagName === 'BUTTON' ? el.textContent ?? '' : '') || el.getAttribute('title') || '';
      if (!name.trim()) out.push(el.outerHTML.slice(0, 120));
    }
    return out;
  });
}
