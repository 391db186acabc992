// The console in a real browser: playwright-core driving Debian's chromium (never a downloaded browser).
//
//   node tests/console/browser.mjs <scenario>   with the scenario's inputs as CONSOLE_* environment variables
//
// Every page the scenario reaches is screenshotted into CONSOLE_ARTIFACTS (the Python test keeps them when the
// scenario fails). Elements are found by role and accessible name, as a person finds them. Exit 0: the scenario
// held; exit 1: it did not, with the reason on stderr.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import path from "node:path";

const env = process.env;
const BASE = env.CONSOLE_URL;
const ARTIFACTS = env.CONSOLE_ARTIFACTS || "/tmp/segbase-console-artifacts";
const TIMEOUT = Number(env.CONSOLE_TIMEOUT_MS || "60000");
const LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"];

let step = 0;
let stepShots = true; // off for the docs scenario, which names its own screenshots
async function snap(page, name) {
  if (!stepShots) return;
  step += 1;
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, `${String(step).padStart(2, "0")}-${name}.png`), fullPage: true });
}

function expect(condition, message) {
  if (!condition) throw new Error(message);
}

async function signIn(page, email, password) {
  await page.goto(`${BASE}/console/login`);
  await snap(page, "sign-in");
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForLoadState("domcontentloaded");
}

const scenarios = {
  // Sign in, find the rejected event in the inbox, replay it and watch the page show it applied.
  async replay(page) {
    await signIn(page, env.CONSOLE_EMAIL, env.CONSOLE_PASSWORD);
    await page.getByRole("heading", { name: "Overview" }).waitFor();
    await snap(page, "overview");
    await page.getByRole("link", { name: "Webhook inbox" }).click();
    await page.getByLabel("State").selectOption("rejected");
    await page.getByLabel("Received in").selectOption("all");
    await page.getByRole("button", { name: "Filter" }).click();
    await snap(page, "inbox-rejected");
    await page.getByRole("link", { name: `Open event ${env.CONSOLE_EVENT_ID}` }).click();
    await page.getByText("unknown result").first().waitFor();
    await snap(page, "event-rejected");
    await page.getByRole("button", { name: "Replay" }).click();
    await page.getByRole("status").filter({ hasText: "back in the inbox" }).waitFor();
    await snap(page, "event-replayed");
    // The page refreshes the event's state by itself until a worker has applied it.
    await page.locator('[data-state="applied"]').waitFor({ timeout: TIMEOUT });
    await snap(page, "event-applied");
    expect(await page.getByRole("button", { name: "Replay" }).count() === 0, "an applied event offers no Replay");
  },

  // Grant credits on the user's page and see the balance change.
  async grant(page) {
    await signIn(page, env.CONSOLE_EMAIL, env.CONSOLE_PASSWORD);
    await page.getByRole("link", { name: "Users" }).click();
    await page.getByRole("searchbox", { name: "Email or id" }).fill(env.CONSOLE_USER_EMAIL);
    await page.getByRole("button", { name: "Search" }).click();
    await snap(page, "users");
    await page.getByRole("link", { name: env.CONSOLE_USER_EMAIL }).click();
    const credits = page.locator('[data-metric="credits"]');
    expect((await credits.textContent()).trim() === env.CONSOLE_CREDITS_BEFORE,
      `credits shown before: ${await credits.textContent()}`);
    await snap(page, "user");
    await page.getByLabel("Amount").fill(env.CONSOLE_GRANT);
    await page.getByLabel("Reason (shown to the user)").fill("browser test goodwill");
    await page.getByRole("button", { name: "Grant credits" }).click();
    await page.getByRole("status").filter({ hasText: "Credits granted." }).waitFor();
    await snap(page, "user-granted");
    const after = (await credits.textContent()).trim();
    expect(after === env.CONSOLE_CREDITS_AFTER, `credits shown after the grant: ${after}`);
    await page.getByRole("table", { name: "Grants and revocations" }).getByRole("cell", { name: "browser test goodwill" }).waitFor();
  },

  // A user who is not an operator is refused and sees no console data.
  async refused(page) {
    await signIn(page, env.CONSOLE_EMAIL, env.CONSOLE_PASSWORD);
    await page.getByRole("alert").filter({ hasText: "not a console operator" }).waitFor();
    await snap(page, "refused");
    expect(await page.getByRole("navigation").count() === 0, "a non-operator must not see the console's navigation");
    const response = await page.goto(`${BASE}/console/users`);
    expect(new URL(page.url()).pathname === "/console/login", `went to ${page.url()} (status ${response.status()})`);
    await snap(page, "still-signed-out");
  },

  // A form whose CSRF token was tampered with is refused with 403 and changes nothing.
  async csrf(page) {
    await signIn(page, env.CONSOLE_EMAIL, env.CONSOLE_PASSWORD);
    await page.goto(`${BASE}/console/users/${env.CONSOLE_USER_ID}`);
    await snap(page, "user");
    await page.locator('form[action$="/credits"] input[name="csrf_token"]').evaluate((input) => { input.value = "forged"; });
    await page.getByLabel("Amount").fill("1000");
    await page.getByLabel("Reason (shown to the user)").fill("forged form");
    const [response] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith("/credits")),
      page.getByRole("button", { name: "Grant credits" }).click(),
    ]);
    expect(response.status() === 403, `a forged CSRF token got ${response.status()}`);
    await page.getByRole("alert").filter({ hasText: "CSRF token is missing or wrong" }).waitFor();
    await snap(page, "csrf-refused");
  },

  // Every page at a phone's width: the navigation wraps, tables scroll inside their box, nothing is cut off.
  async phone(page) {
    await signIn(page, env.CONSOLE_EMAIL, env.CONSOLE_PASSWORD);
    for (const [name, url] of [["overview", "/console/overview"], ["inbox", "/console/inbox?window=all"],
      ["jobs", "/console/jobs"], ["users", "/console/users"], ["audit", "/console/audit"]]) {
      await page.goto(`${BASE}${url}`);
      await snap(page, `phone-${name}`);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      expect(overflow <= 1, `${name} is ${overflow}px wider than the phone's screen`);
      await page.getByRole("link", { name: "Audit log" }).waitFor();
    }
  },

  // The screenshots docs/CONSOLE.md shows (CONSOLE_ARTIFACTS = docs/console).
  async docs(page) {
    stepShots = false;
    await page.goto(`${BASE}/console/login`);
    await page.screenshot({ path: path.join(ARTIFACTS, "sign-in.png"), fullPage: false });
    await signIn(page, env.CONSOLE_EMAIL, env.CONSOLE_PASSWORD);
    const pages = [["overview", "/console/overview"], ["inbox", "/console/inbox?state=rejected&window=all"],
      ["event", `/console/inbox/${env.CONSOLE_EVENT_ID}`], ["jobs", "/console/jobs"],
      ["user", `/console/users/${env.CONSOLE_USER_ID}`], ["audit", "/console/audit"]];
    for (const [name, url] of pages) {
      await page.goto(`${BASE}${url}`);
      await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: false });
    }
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${BASE}/console/overview`);
    await page.screenshot({ path: path.join(ARTIFACTS, "phone-overview.png"), fullPage: false });
  },
};

async function main() {
  const name = process.argv[2];
  const scenario = scenarios[name];
  if (!scenario) throw new Error(`unknown scenario ${name}; one of ${Object.keys(scenarios).join(", ")}`);
  const browser = await chromium.launch({ executablePath: env.CONSOLE_CHROMIUM || "/usr/bin/chromium",
    headless: true, args: LAUNCH_ARGS });
  const phone = name === "phone";
  const context = await browser.newContext(phone
    ? { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 }
    : { viewport: { width: 1280, height: 900 } });
  context.setDefaultTimeout(TIMEOUT);
  const page = await context.newPage();
  page.on("dialog", (dialog) => dialog.accept());
  try {
    await scenario(page);
    console.log(JSON.stringify({ scenario: name, ok: true, steps: step }));
  } catch (error) {
    await snap(page, "failure").catch(() => {});
    throw error;
  } finally {
    await browser.close();
  }
}

main().catch((error) => {
  console.error(`browser scenario failed: ${error.message}`);
  process.exit(1);
});
