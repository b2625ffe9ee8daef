// The browser authenticator page: enrolment, the live list of challenges, Approve / Deny with
// WebAuthn user verification, and Web Push through the service worker. The device itself
// (keys, signed calls, verification) is device.js.

import { detailsBlock, el, scopeWords, timeLeft } from "./render.js";

const D = globalThis.BackchannelDevice;
const $ = (id) => document.getElementById(id);

/// id → {claims, jwt, state, node}
const challenges = new Map();
let device = null;

const OUTCOME = {
  approved: "Approved",
  denied: "Denied",
  reported: "Denied and reported: this service cannot send you requests for a while",
  closed: "Answered on another device",
  expired: "Expired",
};

function say(id, text, kind) {
  const node = $(id);
  node.textContent = text;
  node.hidden = !text;
  if (kind) node.dataset.kind = kind;
}

// --- enrolment ---------------------------------------------------------------------------

function showEnrol() {
  $("enrol").hidden = false;
  $("device").hidden = true;
  $("requests").hidden = true;
}

async function onEnrol(event) {
  event.preventDefault();
  const button = $("enrol-button");
  const code = $("code").value.trim();
  const name = $("device-name").value.trim();
  say("enrol-error", "");
  if (!code) {
    say("enrol-error", "Enter the enrolment code you were given.");
    return;
  }
  button.disabled = true;
  button.textContent = "Enrolling…";
  try {
    device = await D.enrol(code, name);
  } catch (e) {
    const wrong = e instanceof D.ApiError && e.code === "invalid_code";
    say(
      "enrol-error",
      wrong
        ? "This enrolment code is not valid or has expired. Check it, or ask for a new one."
        : `Enrolment failed: ${e.message}. Please try again.`,
    );
    button.disabled = false;
    button.textContent = "Enrol";
    $("code").focus();
    return;
  }
  if (await D.platformAuthenticator()) {
    try {
      await D.registerWebAuthn(device);
    } catch (e) {
      device.webauthnError = e.message;
    }
  }
  $("enrol-form").reset();
  button.disabled = false;
  button.textContent = "Enrol";
  start();
}

// --- the enrolled device -------------------------------------------------------------------

function start() {
  $("enrol").hidden = true;
  $("device").hidden = false;
  $("requests").hidden = false;
  say("device-status", `Enrolled as ${device.name}`, "ok");
  if (device.webauthn) {
    say("uv-status", "Approvals are confirmed with this device's screen lock.", "ok");
  } else if (device.webauthnError) {
    say("uv-status", "Screen-lock confirmation could not be set up; approvals are not user-verified.", "warn");
  } else {
    say("uv-status", "This browser has no screen-lock authenticator; approvals are not user-verified.", "warn");
  }
  D.openStream(device, onEvent, onStreamState);
  setupPush();
}

function onStreamState(state, detail) {
  if (state === "live") {
    say("stream-status", "Connected. Requests appear here the moment they are made.", "ok");
  } else if (state === "reconnecting") {
    say("stream-status", "Connection lost. Reconnecting…", "warn");
  } else {
    say("stream-status", detail || "Stopped.", "error");
  }
}

async function setupPush() {
  const keepOpen = "keep this page open to receive requests.";
  if (!("serviceWorker" in navigator)) {
    say("push-status", `Notifications are not available in this browser; ${keepOpen}`, "warn");
    return;
  }
  let registration;
  try {
    registration = await navigator.serviceWorker.register("/authenticator/sw.js", {
      scope: "/authenticator",
    });
  } catch (e) {
    say("push-status", `Notifications are not available here; ${keepOpen}`, "warn");
    return;
  }
  try {
    if (!("PushManager" in self)) throw new Error("no Push API");
    const response = await fetch("/device/v1/webpush", { cache: "no-store" });
    if (response.status === 404) {
      say("push-status", `This server does not send notifications; ${keepOpen}`, "warn");
      return;
    }
    const { application_server_key } = await response.json();
    let permission = Notification.permission;
    if (permission === "default") permission = await Notification.requestPermission();
    if (permission !== "granted") {
      say("push-status", `Notifications are blocked; ${keepOpen}`, "warn");
      return;
    }
    const subscription =
      (await registration.pushManager.getSubscription()) ||
      (await registration.pushManager.subscribe({
        userVisibleOnly: true,
        applicationServerKey: D.b64uDecode(application_server_key),
      }));
    const { endpoint, keys } = subscription.toJSON();
    await D.call(device, "PUT", "/device/v1/device/push", { webpush: { endpoint, keys } });
    say("push-status", "Notifications are on: you are told of requests when this page is closed.", "ok");
  } catch (e) {
    say("push-status", `Notifications could not be set up (${e.message}); ${keepOpen}`, "warn");
  }
}

async function onForget() {
  if (!window.confirm("Remove this device? It will no longer receive requests.")) return;
  try {
    await D.call(device, "DELETE", "/device/v1/device");
  } catch (_) {
    // Forgotten here either way; the server closes what it still has on its own.
  }
  await D.forgetDevice();
  window.location.reload();
}

// --- challenges --------------------------------------------------------------------------

async function onEvent(name, data) {
  let message;
  try {
    message = JSON.parse(data);
  } catch (_) {
    return;
  }
  if (name === "challenge") {
    await addChallenge(message.challenge_id, message.challenge);
  } else if (name === "challenge_closed") {
    const c = challenges.get(message.challenge_id);
    if (c && (c.state === "pending" || c.state === "deciding")) {
      setState(c, message.state === "closed" ? (expired(c) ? "expired" : "closed") : message.state);
    }
  }
}

const expired = (c) => Date.now() / 1000 >= c.claims.exp;

async function addChallenge(id, jwt) {
  if (challenges.has(id)) return;
  let claims;
  try {
    claims = await D.verifyChallenge(device, jwt);
  } catch (e) {
    console.warn("challenge refused", id, e.message);
    return;
  }
  if (claims.jti !== id) return;
  const c = { id, jwt, claims, state: "pending", node: card(id, claims) };
  challenges.set(id, c);
  c.node.querySelector(".approve").addEventListener("click", () => onDecide(c, "approve"));
  c.node.querySelector(".deny").addEventListener("click", () => onDecide(c, "deny"));
  c.node.querySelector(".not-me").addEventListener("click", () => onDecide(c, "deny", true));
  $("challenge-list").prepend(c.node);
  $("empty").hidden = true;
  if (expired(c)) setState(c, "expired");
  tick();
  if (window.location.hash === `#challenge=${id}`) {
    c.node.classList.add("focus");
    c.node.scrollIntoView({ block: "center" });
  }
}

function card(id, claims) {
  const li = el("li", "card");
  li.dataset.challengeId = id;
  const head = el("div", "card-head");
  head.append(el("span", "badge", "Sign-in request"), el("span", "time"));
  li.append(head);
  li.append(el("h3", "client", claims.client_name));
  li.append(el("p", "lead", "is asking you to confirm that it is you."));
  if (claims.binding_message) {
    const b = el("div", "binding");
    b.append(el("span", "label", "Check that this matches what you see"));
    b.append(el("strong", "binding-message", claims.binding_message));
    li.append(b);
  }
  const scopes = el("div", "scopes");
  scopes.append(el("h4", null, "It will receive"));
  const ul = el("ul");
  for (const words of scopeWords(claims.scope)) ul.append(el("li", null, words));
  scopes.append(ul);
  li.append(scopes);
  if (claims.authorization_details) li.append(detailsBlock(claims.authorization_details));
  if (claims.uv_required) {
    li.append(el("p", "uv-required", "This request requires you to verify it's you"));
  }
  const actions = el("div", "actions");
  actions.append(el("button", "approve", "Approve"), el("button", "deny", "Deny"));
  li.append(actions);
  // A request the user did not start is the sign of someone trying their password: saying so
  // denies it and keeps this service from asking again for a while.
  const report = el("div", "actions report");
  report.append(el("button", "not-me", "I didn't ask for this"));
  li.append(report);
  li.append(el("p", "note"));
  const outcome = el("p", "outcome");
  outcome.setAttribute("role", "status");
  outcome.hidden = true;
  li.append(outcome);
  return li;
}

function setState(c, state, note) {
  c.state = state;
  c.node.dataset.state = state;
  const buttons = c.node.querySelectorAll(".actions button");
  if (state === "deciding") {
    buttons.forEach((b) => (b.disabled = true));
    return;
  }
  if (state === "pending") {
    buttons.forEach((b) => (b.disabled = false));
  } else {
    c.node.querySelectorAll(".actions").forEach((a) => a.remove());
    const outcome = c.node.querySelector(".outcome");
    outcome.textContent = OUTCOME[state] || state;
    outcome.hidden = false;
    c.node.querySelector(".time").textContent = "";
  }
  c.node.querySelector(".note").textContent = note || "";
}

async function onDecide(c, decision, notMe = false) {
  if (c.state !== "pending") return;
  setState(c, "deciding");
  let assertion = null;
  if (decision === "approve" && device.webauthn) {
    try {
      assertion = await D.webauthnAssertion(device, c.id, c.jwt, decision);
    } catch (e) {
      setState(c, "pending", "Confirmation with your screen lock was cancelled. The request is still waiting.");
      return;
    }
  }
  try {
    const answer = await D.decide(device, c.id, c.jwt, decision, assertion, notMe);
    setState(
      c,
      notMe && answer.state === "denied" ? "reported" : answer.state,
      assertion ? "Confirmed with your screen lock." : "",
    );
  } catch (e) {
    if (e instanceof D.ApiError && e.code === "challenge_closed") {
      setState(c, expired(c) ? "expired" : "closed");
    } else {
      setState(c, "pending", `Could not send your answer: ${e.message}`);
    }
  }
}

function tick() {
  const now = Date.now();
  for (const c of challenges.values()) {
    if (c.state !== "pending" && c.state !== "deciding") continue;
    if (now / 1000 >= c.claims.exp) {
      setState(c, "expired");
    } else {
      c.node.querySelector(".time").textContent = timeLeft(c.claims.exp, now);
    }
  }
}

async function main() {
  $("enrol-form").addEventListener("submit", onEnrol);
  $("forget").addEventListener("click", onForget);
  setInterval(tick, 1000);
  device = await D.loadDevice();
  if (device) start();
  else showEnrol();
  document.body.dataset.ready = "true";
}

main();
