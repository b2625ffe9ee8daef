// The browser authenticator in a real headless Chromium (the system's, driven by
// playwright-core over CDP), against a real server that crates/server/tests/it/e2e_browser.rs
// started. The relying party is played here over plain HTTP, from the wire protocol.
//
// Env: ISSUER (http://localhost:PORT, what the browser opens), API (http://127.0.0.1:PORT, for
// the relying party and the admin API), ADMIN_TOKEN, CHROMIUM (the executable), SCREENSHOT (a
// PNG path). Prints one "ok"/"not ok" line per step; exits non-zero on the first failure.

import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const { ISSUER, API, ADMIN_TOKEN, CHROMIUM, SCREENSHOT } = process.env;
const WAIT = { timeout: 30000 };

// --- the relying party and the operator, over HTTP ------------------------------------------

async function admin(path, body) {
  const r = await fetch(API + path, {
    method: "POST",
    headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  assert.equal(r.status, 201, `${path}: ${await r.clone().text()}`);
  return r.json();
}

async function form(path, client, params) {
  const r = await fetch(API + path, {
    method: "POST",
    headers: {
      Authorization: `Basic ${Buffer.from(`${client.client_id}:${client.client_secret}`).toString("base64")}`,
      "Content-Type": "application/x-www-form-urlencoded",
    },
    body: new URLSearchParams(params).toString(),
  });
  return { status: r.status, body: await r.json() };
}

async function startRequest(client, params) {
  const r = await form("/bc-authorize", client, { scope: "openid email", ...params });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.auth_req_id;
}

/// Polls /token until the request is no longer pending (honouring interval and slow_down).
async function poll(client, authReqId) {
  let interval = 1;
  for (let i = 0; i < 60; i++) {
    const r = await form("/token", client, {
      grant_type: "urn:openid:params:grant-type:ciba",
      auth_req_id: authReqId,
    });
    if (r.status === 200) return r.body;
    if (r.body.error === "slow_down") interval += 5;
    else if (r.body.error !== "authorization_pending") return r.body;
    await new Promise((res) => setTimeout(res, interval * 1000));
  }
  throw new Error("the request stayed pending");
}

const claimsOf = (jwt) => JSON.parse(Buffer.from(jwt.split(".")[1], "base64url").toString());

// --- the browser ---------------------------------------------------------------------------

let failed = false;
async function step(name, body) {
  if (failed) return;
  try {
    await body();
    console.log(`ok - ${name}`);
  } catch (e) {
    failed = true;
    console.log(`not ok - ${name}\n${e.stack || e}`);
  }
}

/// A fresh browser profile (its own IndexedDB); with `uv`, a CDP virtual platform
/// authenticator that verifies its user.
async function openPage(browser, uv) {
  const context = await browser.newContext();
  await context.grantPermissions(["notifications"], { origin: ISSUER });
  const page = await context.newPage();
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") console.log(`  [page] ${m.text()}`);
  });
  page.on("pageerror", (e) => console.log(`  [page error] ${e.message}`));
  const cdp = await context.newCDPSession(page);
  let authenticatorId = null;
  if (uv) {
    await cdp.send("WebAuthn.enable");
    ({ authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
      options: {
        protocol: "ctap2",
        transport: "internal",
        hasResidentKey: true,
        hasUserVerification: true,
        isUserVerified: true,
        automaticPresenceSimulation: true,
      },
    }));
  }
  await page.goto(`${ISSUER}/authenticator`);
  await page.locator("body[data-ready=true]").waitFor(WAIT);
  return { context, page, cdp, authenticatorId };
}

async function enrol(page, code, name) {
  await page.getByLabel("Enrolment code", { exact: true }).fill(code);
  await page.getByLabel("Device name", { exact: true }).fill(name);
  await page.getByRole("button", { name: "Enrol", exact: true }).click();
  await page.getByText(`Enrolled as ${name}`, { exact: true }).waitFor(WAIT);
  await page.getByText("Connected. Requests appear here", { exact: false }).waitFor(WAIT);
}

const cardOf = (page, binding) => page.locator("li.card", { hasText: binding });

async function main() {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
  const client = await admin("/admin/v1/clients", {
    name: "Demo Bank",
    auth_method: "client_secret_basic",
    scope: "openid email profile",
  });
  const alice = await admin("/admin/v1/users", { email: "alice@example.com" });
  const hint = { login_hint: "alice@example.com" };
  let a, b;

  await step("the page is served with a strict CSP and no framing", async () => {
    const r = await fetch(`${API}/authenticator`);
    assert.equal(r.status, 200);
    const csp = r.headers.get("content-security-policy");
    assert.match(csp, /script-src 'self'/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.doesNotMatch(csp, /unsafe-inline/);
  });

  await step("a wrong enrolment code is refused with a message; the page stays usable", async () => {
    a = await openPage(browser, true);
    await a.page.getByLabel("Enrolment code", { exact: true }).fill("AAAA-BBBB-CCCC-DDDD-EEEE");
    await a.page.getByRole("button", { name: "Enrol", exact: true }).click();
    await a.page.getByText("This enrolment code is not valid or has expired", { exact: false }).waitFor(WAIT);
    assert.equal(await a.page.getByRole("button", { name: "Enrol", exact: true }).isEnabled(), true);
  });

  await step("enrolment with the right code, a WebAuthn credential registered", async () => {
    const { code } = await admin("/admin/v1/enrolments", { user: alice.sub });
    await enrol(a.page, code, "Work laptop");
    await a.page.getByText("Approvals are confirmed with this device's screen lock.").waitFor(WAIT);
    const { credentials } = await a.cdp.send("WebAuthn.getCredentials", {
      authenticatorId: a.authenticatorId,
    });
    assert.equal(credentials.length, 1, "one credential on the platform authenticator");
  });

  const binding = "Transfer SGD 120 #4F2A";
  let approved;
  await step("a request appears live with who asks, for what, and the time left", async () => {
    approved = await startRequest(client, {
      ...hint,
      binding_message: binding,
      authorization_details: JSON.stringify([
        {
          type: "payment_initiation",
          instructedAmount: { currency: "SGD", amount: "120.00" },
          creditorName: "Acme Pte Ltd",
        },
      ]),
    });
    const card = cardOf(a.page, binding);
    await card.waitFor(WAIT);
    for (const text of ["Demo Bank", binding, "Confirm that it is you", "Your email address", "Payment", "SGD 120.00", "Acme Pte Ltd", "Instructed amount"]) {
      await card.getByText(text, { exact: true }).first().waitFor(WAIT);
    }
    assert.match(await card.locator(".time").innerText(), /^\d+:\d\d left$/);
    await a.page.screenshot({ path: SCREENSHOT, fullPage: true });
  });

  let used = null;
  await step("Approve with WebAuthn: the relying party gets tokens with the verified-user acr", async () => {
    // Keep the assertion the page sends, to replay it below.
    await a.page.route("**/decision", async (route) => {
      const jws = JSON.parse(route.request().postData()).decision;
      used = claimsOf(jws).webauthn;
      await route.continue();
    });
    const card = cardOf(a.page, binding);
    await card.getByRole("button", { name: "Approve", exact: true }).click();
    await card.getByText("Approved", { exact: true }).waitFor(WAIT);
    assert.equal(await card.getByRole("button", { name: "Approve" }).count(), 0);
    const tokens = await poll(client, approved);
    assert.ok(tokens.id_token, JSON.stringify(tokens));
    const id = claimsOf(tokens.id_token);
    assert.equal(id.acr, "urn:backchannel:acr:device:uv");
    assert.deepEqual(id.amr, ["pop", "user", "mfa"]);
  });

  await step("a replayed or forged WebAuthn assertion is refused by the server", async () => {
    await a.page.unroute("**/decision");
    assert.ok(used && used.signature, "the approval carried a WebAuthn assertion");
    await startRequest(client, { ...hint, binding_message: "Replay #5" });
    const card = cardOf(a.page, "Replay #5");
    await card.waitFor(WAIT);
    const id = await card.getAttribute("data-challenge-id");
    // Signed by this page's own device key, so only the assertion is wrong.
    const answers = await a.page.evaluate(
      async ({ id, replayed }) => {
        const D = globalThis.BackchannelDevice;
        const device = await D.loadDevice();
        const { challenge } = await D.call(device, "GET", `/device/v1/challenges/${id}`);
        // A fresh assertion for this very challenge, its signature altered.
        const fresh = await D.webauthnAssertion(device, id, challenge, "approve");
        const sig = D.b64uDecode(fresh.signature);
        sig[sig.length - 1] ^= 1;
        const b64u = (b) => btoa(String.fromCharCode(...b)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
        const forged = { ...fresh, signature: b64u(sig) };
        const out = [];
        for (const assertion of [replayed, forged]) {
          try {
            await D.decide(device, id, challenge, "approve", assertion);
            out.push("accepted");
          } catch (e) {
            out.push(e.code);
          }
        }
        return out;
      },
      { id, replayed: used },
    );
    assert.deepEqual(answers, ["invalid_decision", "invalid_decision"]);
    await card.getByRole("button", { name: "Deny", exact: true }).click();
    await card.getByText("Denied", { exact: true }).waitFor(WAIT);
  });

  await step("Deny: the relying party gets access_denied", async () => {
    const denied = await startRequest(client, { ...hint, binding_message: "Deny me #77" });
    const card = cardOf(a.page, "Deny me #77");
    await card.getByRole("button", { name: "Deny", exact: true }).click();
    await card.getByText("Denied", { exact: true }).waitFor(WAIT);
    assert.equal((await poll(client, denied)).error, "access_denied");
  });

  await step("I didn't ask for this: denied, reported, and that client is blocked", async () => {
    const loud = await admin("/admin/v1/clients", {
      name: "Loud Bank",
      auth_method: "client_secret_basic",
      scope: "openid email",
    });
    const id = await startRequest(loud, { ...hint, binding_message: "Not me #13" });
    const card = cardOf(a.page, "Not me #13");
    await card.getByRole("button", { name: "I didn't ask for this" }).click();
    await card.getByText("Denied and reported", { exact: false }).waitFor(WAIT);
    assert.equal((await poll(loud, id)).error, "access_denied");
    const again = await form("/bc-authorize", loud, { scope: "openid", ...hint });
    assert.equal(again.status, 403, JSON.stringify(again.body));
    assert.equal(again.body.error, "access_denied");
  });

  await step("answered on another device (no platform authenticator): closed here, not user-verified", async () => {
    b = await openPage(browser, false);
    const { code } = await admin("/admin/v1/enrolments", { user: alice.sub });
    await enrol(b.page, code, "Home browser");
    await b.page.getByText("This browser has no screen-lock authenticator", { exact: false }).waitFor(WAIT);
    const id = await startRequest(client, { ...hint, binding_message: "Elsewhere #12" });
    const here = cardOf(a.page, "Elsewhere #12");
    await here.waitFor(WAIT);
    const there = cardOf(b.page, "Elsewhere #12");
    await there.getByRole("button", { name: "Approve", exact: true }).click();
    await there.getByText("Approved", { exact: true }).waitFor(WAIT);
    await here.getByText("Answered on another device", { exact: true }).waitFor(WAIT);
    assert.equal(await here.getByRole("button").count(), 0, "no buttons on a closed challenge");
    const tokens = await poll(client, id);
    assert.equal(claimsOf(tokens.id_token).acr, "urn:backchannel:acr:device");
    assert.deepEqual(claimsOf(tokens.id_token).amr, ["pop"]);
  });

  await step("an expired challenge says so and cannot be decided", async () => {
    const id = await startRequest(client, { ...hint, binding_message: "Too late #3", requested_expiry: "3" });
    const card = cardOf(a.page, "Too late #3");
    await card.waitFor(WAIT);
    await card.locator(".outcome", { hasText: "Expired" }).waitFor(WAIT);
    assert.equal(await card.getByRole("button").count(), 0);
    assert.equal((await poll(client, id)).error, "expired_token");
  });

  await step("a push delivered to the service worker shows the notification", async () => {
    const scope = await a.page.evaluate(async () => (await navigator.serviceWorker.ready).scope);
    assert.equal(scope, `${ISSUER}/authenticator`);
    const registrations = new Promise((resolve) =>
      a.cdp.on("ServiceWorker.workerRegistrationUpdated", (e) => {
        const r = e.registrations.find((x) => x.scopeURL === scope && !x.isDeleted);
        if (r) resolve(r.registrationId);
      }),
    );
    await a.cdp.send("ServiceWorker.enable");
    const registrationId = await registrations;
    await startRequest(client, { ...hint, binding_message: "Pushed #9" });
    const card = cardOf(a.page, "Pushed #9");
    await card.waitFor(WAIT);
    const challengeId = await card.getAttribute("data-challenge-id");
    await a.cdp.send("ServiceWorker.deliverPushMessage", {
      origin: ISSUER,
      registrationId,
      data: JSON.stringify({ challenge_id: challengeId, issuer: ISSUER }),
    });
    let shown = null;
    for (let i = 0; i < 300 && !shown; i++) {
      shown = await a.page.evaluate(async () => {
        const r = await navigator.serviceWorker.ready;
        const n = await r.getNotifications();
        return n.length ? { title: n[0].title, body: n[0].body, tag: n[0].tag } : null;
      });
      if (!shown) await new Promise((r) => setTimeout(r, 100));
    }
    assert.deepEqual(shown, {
      title: "Sign-in request from Demo Bank",
      body: "Pushed #9",
      tag: challengeId,
    });
  });

  await browser.close();
  if (failed) process.exit(1);
  console.log("browser authenticator: all steps passed");
}

main().catch((e) => {
  console.log(`not ok - ${e.stack || e}`);
  process.exit(1);
});
