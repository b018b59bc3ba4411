// Debian's Chromium, headless, through playwright-core (which brings no browser
// of its own): for the browser test and the screenshot script.

import { existsSync } from 'node:fs';
import { chromium, type Browser, type BrowserContext } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

const ARGS = [
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

/**
 * A browser with a fresh context. Playwright owns the profile directory and
 * removes it once the browser has exited, so nothing here races Chromium still
 * writing its cache (removing the profile first left Chromium running and held
 * the test process open for good).
 */
export async function launchChromium(viewport = { width: 1280, height: 860 }): Promise<{ browser: Browser; context: BrowserContext }> {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
  try {
    return { browser, context: await browser.newContext({ viewport }) };
  } catch (error) {
    await browser.close();
    throw error;
  }
}
