// Debian's Chromium, headless, through playwright-core (which brings no browser
// of its own): for the browser test and the screenshot script.

import { existsSync } from 'node:fs';
import { chromium, type BrowserContext } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export function chromiumInstalled(): boolean {
  return existsSync(CHROMIUM);
}

/** A browser with its own profile in `userDataDir` (a fresh, empty directory). */
export function launchChromium(userDataDir: string, viewport = { width: 1280, height: 860 }): Promise<BrowserContext> {
  return chromium.launchPersistentContext(userDataDir, { executablePath: CHROMIUM, args: ARGS, headless: true, viewport });
}
