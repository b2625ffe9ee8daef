// The browser authenticator's service worker: a Web Push message carries only a challenge id
// (docs/device-api.md §6), so the worker fetches the challenge with the device key, verifies
// it against /jwks, and shows "Sign-in request from <client name>". A click opens the page at
// that challenge. No fetch handler: the page is always loaded from the server.
"use strict";

importScripts("/authenticator/device.js");

const D = self.BackchannelDevice;

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

async function onPush(event) {
  let id = null;
  try {
    const data = event.data ? event.data.json() : {};
    if (typeof data.challenge_id === "string") id = data.challenge_id;
  } catch (_) {
    id = null;
  }
  let title = "Sign-in request";
  let body = "Open the authenticator to review it.";
  const device = await D.loadDevice().catch(() => undefined);
  if (id && device) {
    try {
      const envelope = await D.call(
        device,
        "GET",
        `/device/v1/challenges/${encodeURIComponent(id)}`,
      );
      const claims = await D.verifyChallenge(device, envelope.challenge);
      title = `Sign-in request from ${claims.client_name}`;
      if (claims.binding_message) body = claims.binding_message;
    } catch (_) {
      // Shown without details: the page verifies again before anything can be approved.
    }
  }
  await self.registration.showNotification(title, {
    body,
    tag: id || "backchannel",
    icon: "/authenticator/icon.svg",
    data: { challengeId: id },
    requireInteraction: true,
  });
}

self.addEventListener("push", (event) => event.waitUntil(onPush(event)));

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const id = event.notification.data && event.notification.data.challengeId;
  const url = id ? `/authenticator#challenge=${encodeURIComponent(id)}` : "/authenticator";
  event.waitUntil(
    (async () => {
      const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
      for (const w of windows) {
        if (new URL(w.url).pathname === "/authenticator") {
          await w.navigate(url).catch(() => undefined);
          return w.focus();
        }
      }
      return self.clients.openWindow(url);
    })(),
  );
});
