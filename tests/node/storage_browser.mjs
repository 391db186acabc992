// Debian's chromium (driven by playwright-core, which downloads no browser) opens stored files the way a victim
// would: by navigating to their URLs on the API's origin. Input: one JSON argument {urls: {label: url}, controlHtml}; output:
// per label what the page became: its Content-Type, whether the stored script ran, whether it was a download.
import { chromium } from 'playwright-core';

const cfg = JSON.parse(process.argv[2]);
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
});
const out = {};
try {
  // control: the same script does run in an ordinary page, so `scriptRan: false` below means something
  const control = await browser.newPage();
  await control.setContent(cfg.controlHtml);
  out.control = { scriptRan: await control.evaluate(() => window.__segbase_pwned === true) };
  await control.close();
  for (const [label, url] of Object.entries(cfg.urls)) {
    const context = await browser.newContext({ acceptDownloads: true });
    const page = await context.newPage();
    const result = { download: false };
    page.on('download', () => { result.download = true; });
    try {
      const response = await page.goto(url, { waitUntil: 'load', timeout: 90000 });
      result.status = response.status();
      result.contentType = response.headers()['content-type'];
      result.csp = response.headers()['content-security-policy'];
      result.nosniff = response.headers()['x-content-type-options'];
      await page.waitForTimeout(300);
      result.scriptRan = await page.evaluate(() => window.__segbase_pwned === true || document.title === 'pwned');
      result.text = (await page.evaluate(() => document.body ? document.body.innerText : '')).slice(0, 200);
    } catch (error) {
      result.error = String(error.message).split('\n')[0];
      result.scriptRan = false;
    }
    // an <iframe> on another page cannot run it either
    const frameHost = await context.newPage();
    await frameHost.setContent(`<iframe src="${url}"></iframe>`);
    await frameHost.waitForTimeout(500);
    result.framedScriptRan = await frameHost.evaluate(() => {
      try { return document.querySelector('iframe').contentWindow.__segbase_pwned === true; } catch { return false; }
    });
    out[label] = result;
    await context.close();
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
