// The browser authenticator's device: its key (WebCrypto ECDSA P-256, non-extractable, kept in
// IndexedDB), device-signed calls to this origin's device API, challenge verification against
// /jwks, decisions, and the WebAuthn ceremonies. A classic script shared by the page and the
// service worker (both load it; module service workers are not in every browser yet), so it
// defines one global, BackchannelDevice. docs/device-api.md describes every message.
"use strict";

(function (global) {
  const DB_NAME = "backchannel-authenticator";
  const STORE = "device";
  const enc = new TextEncoder();
  const dec = new TextDecoder();

  // --- encodings --------------------------------------------------------------------------

  function b64u(bytes) {
    const u8 = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
    let s = "";
    for (let i = 0; i < u8.length; i++) s += String.fromCharCode(u8[i]);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function b64uDecode(text) {
    const s = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
    const out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out;
  }

  const b64uJson = (value) => b64u(enc.encode(JSON.stringify(value)));

  async function sha256(text) {
    return new Uint8Array(await crypto.subtle.digest("SHA-256", enc.encode(text)));
  }

  function randomId(bytes) {
    return b64u(crypto.getRandomValues(new Uint8Array(bytes)));
  }

  const nowSecs = () => Math.floor(Date.now() / 1000);

  // --- storage ----------------------------------------------------------------------------

  function openDb() {
    return new Promise((resolve, reject) => {
      const req = indexedDB.open(DB_NAME, 1);
      req.onupgradeneeded = () => req.result.createObjectStore(STORE);
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  }

  async function withStore(mode, act) {
    const db = await openDb();
    try {
      return await new Promise((resolve, reject) => {
        const tx = db.transaction(STORE, mode);
        const req = act(tx.objectStore(STORE));
        tx.oncomplete = () => resolve(req.result);
        tx.onerror = () => reject(tx.error);
        tx.onabort = () => reject(tx.error);
      });
    } finally {
      db.close();
    }
  }

  /// The enrolled device ({deviceId, issuer, name, keys, webauthn}), or undefined.
  const loadDevice = () => withStore("readonly", (s) => s.get("current"));
  const saveDevice = (device) => withStore("readwrite", (s) => s.put(device, "current"));
  const forgetDevice = () => withStore("readwrite", (s) => s.delete("current"));

  // --- errors -----------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.error_description) || `HTTP ${status}`);
      this.status = status;
      this.code = (body && body.error) || "";
    }
  }

  async function answer(response) {
    const text = await response.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch (_) {
      body = null;
    }
    if (!response.ok) throw new ApiError(response.status, body);
    return body;
  }

  // --- signing ----------------------------------------------------------------------------

  async function signJwt(privateKey, header, claims) {
    const input = `${b64uJson(header)}.${b64uJson(claims)}`;
    const sig = await crypto.subtle.sign(
      { name: "ECDSA", hash: "SHA-256" },
      privateKey,
      enc.encode(input),
    );
    return `${input}.${b64u(sig)}`;
  }

  /// `Authorization: Device <jwt>` for one call: bound to the method and to the issuer's URL
  /// of the path (docs/device-api.md §2), single-use jti, one minute of life.
  async function deviceAuthorization(device, method, path) {
    const iat = nowSecs();
    const jwt = await signJwt(
      device.keys.privateKey,
      { alg: "ES256", typ: "device-auth+jwt", kid: device.deviceId },
      {
        iss: device.deviceId,
        htm: method,
        htu: device.issuer + path,
        iat,
        exp: iat + 60,
        jti: randomId(16),
      },
    );
    return `Device ${jwt}`;
  }

  /// A device-signed call to this origin's device API.
  async function call(device, method, path, body, extra) {
    const headers = { Authorization: await deviceAuthorization(device, method, path) };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      ...(extra || {}),
    });
    return answer(response);
  }

  // --- enrolment --------------------------------------------------------------------------

  /// Makes the device key and enrols it with the one-time code. Throws ApiError
  /// (`invalid_code` for a wrong or expired code).
  async function enrol(code, name) {
    const keys = await crypto.subtle.generateKey(
      { name: "ECDSA", namedCurve: "P-256" },
      false,
      ["sign", "verify"],
    );
    const jwk = await crypto.subtle.exportKey("jwk", keys.publicKey);
    const request = {
      code,
      public_jwk: { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y },
    };
    if (name) request.name = name;
    const enrolled = await answer(
      await fetch("/device/v1/enrol", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(request),
        cache: "no-store",
      }),
    );
    const device = {
      deviceId: enrolled.device_id,
      issuer: enrolled.issuer,
      name: name || "authenticator",
      keys,
      webauthn: null,
      enrolledAt: Date.now(),
    };
    await saveDevice(device);
    return device;
  }

  const rpId = (device) => new URL(device.issuer).hostname;

  /// Whether this browser has a platform authenticator that verifies its user.
  async function platformAuthenticator() {
    try {
      return (
        typeof PublicKeyCredential !== "undefined" &&
        (await PublicKeyCredential.isUserVerifyingPlatformAuthenticatorAvailable())
      );
    } catch (_) {
      return false;
    }
  }

  /// Registers a WebAuthn credential bound to this device (docs/device-api.md §9) and keeps
  /// its id with the device.
  async function registerWebAuthn(device) {
    const challenge = await sha256(`backchannel:webauthn-register:v1.${device.deviceId}`);
    const credential = await navigator.credentials.create({
      publicKey: {
        rp: { id: rpId(device), name: "Backchannel" },
        user: {
          id: enc.encode(device.deviceId),
          name: device.name,
          displayName: device.name,
        },
        challenge,
        pubKeyCredParams: [
          { type: "public-key", alg: -7 },
          { type: "public-key", alg: -8 },
          { type: "public-key", alg: -257 },
        ],
        authenticatorSelection: {
          authenticatorAttachment: "platform",
          userVerification: "required",
          residentKey: "discouraged",
        },
        attestation: "none",
        timeout: 120000,
      },
    });
    const registered = await call(device, "POST", "/device/v1/device/webauthn", {
      credential_id: b64u(credential.rawId),
      client_data_json: b64u(credential.response.clientDataJSON),
      attestation_object: b64u(credential.response.attestationObject),
    });
    device.webauthn = { credentialId: registered.credential_id, alg: registered.alg };
    await saveDevice(device);
    return device.webauthn;
  }

  // --- challenges -------------------------------------------------------------------------

  let jwksCache = null;

  async function jwks(refresh) {
    if (!jwksCache || refresh || Date.now() - jwksCache.at > 300000) {
      const keys = await answer(await fetch("/jwks", { cache: "no-store" }));
      jwksCache = { at: Date.now(), keys: (keys && keys.keys) || [] };
    }
    return jwksCache.keys;
  }

  const ALGS = {
    EdDSA: { kty: "OKP", crv: "Ed25519", imp: { name: "Ed25519" }, sig: { name: "Ed25519" } },
    ES256: {
      kty: "EC",
      crv: "P-256",
      imp: { name: "ECDSA", namedCurve: "P-256" },
      sig: { name: "ECDSA", hash: "SHA-256" },
    },
    ES384: {
      kty: "EC",
      crv: "P-384",
      imp: { name: "ECDSA", namedCurve: "P-384" },
      sig: { name: "ECDSA", hash: "SHA-384" },
    },
    RS256: {
      kty: "RSA",
      imp: { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" },
      sig: { name: "RSASSA-PKCS1-v1_5" },
    },
    PS256: {
      kty: "RSA",
      imp: { name: "RSA-PSS", hash: "SHA-256" },
      sig: { name: "RSA-PSS", saltLength: 32 },
    },
  };

  async function verifiedBy(keys, header, input, signature) {
    const alg = ALGS[header.alg];
    const candidates = keys.filter(
      (k) =>
        k.kty === alg.kty &&
        (!alg.crv || k.crv === alg.crv) &&
        (!k.use || k.use === "sig") &&
        (!k.alg || k.alg === header.alg) &&
        (!header.kid || k.kid === header.kid),
    );
    for (const jwk of candidates) {
      const key = await crypto.subtle.importKey("jwk", jwk, alg.imp, false, ["verify"]);
      if (await crypto.subtle.verify(alg.sig, key, signature, enc.encode(input))) return true;
    }
    return false;
  }

  /// The claims of a challenge JWT, once its signature verified with the server's /jwks
  /// (fetched again for a kid it does not know) and it names this issuer and this device.
  async function verifyChallenge(device, jwt) {
    const parts = String(jwt).split(".");
    if (parts.length !== 3) throw new Error("the challenge is not a JWS");
    const header = JSON.parse(dec.decode(b64uDecode(parts[0])));
    if (header.typ !== "challenge+jwt" || !ALGS[header.alg]) {
      throw new Error("the challenge has an unexpected type or algorithm");
    }
    const input = `${parts[0]}.${parts[1]}`;
    const signature = b64uDecode(parts[2]);
    const ok =
      (await verifiedBy(await jwks(false), header, input, signature)) ||
      (await verifiedBy(await jwks(true), header, input, signature));
    if (!ok) throw new Error("the challenge signature does not verify");
    const claims = JSON.parse(dec.decode(b64uDecode(parts[1])));
    if (claims.iss !== device.issuer || claims.aud !== device.deviceId) {
      throw new Error("the challenge is for another server or device");
    }
    return claims;
  }

  /// Signs and sends a decision over exactly the challenge JWT shown. With `assertion`
  /// (from webauthnAssertion), the user was verified; `notMe` marks a denial "I did not ask
  /// for this".
  async function decide(device, challengeId, jwt, decision, assertion, notMe = false) {
    const shownHash = b64u(await sha256(jwt));
    const claims = {
      iss: device.deviceId,
      challenge_id: challengeId,
      decision,
      user_verified: Boolean(assertion),
      shown_hash: shownHash,
      iat: nowSecs(),
      jti: randomId(16),
    };
    if (assertion) claims.webauthn = assertion;
    if (notMe) claims.not_me = true;
    const jws = await signJwt(
      device.keys.privateKey,
      { alg: "ES256", typ: "decision+jwt", kid: device.deviceId },
      claims,
    );
    const path = `/device/v1/challenges/${encodeURIComponent(challengeId)}/decision`;
    return call(device, "POST", path, { decision: jws });
  }

  /// A WebAuthn assertion (user verification required) whose challenge binds the challenge
  /// id, the decision and the hash of the challenge shown.
  async function webauthnAssertion(device, challengeId, jwt, decision) {
    const shownHash = b64u(await sha256(jwt));
    const challenge = await sha256(
      `backchannel:webauthn-decision:v1.${challengeId}.${decision}.${shownHash}`,
    );
    const credential = await navigator.credentials.get({
      publicKey: {
        challenge,
        rpId: rpId(device),
        allowCredentials: [
          {
            type: "public-key",
            id: b64uDecode(device.webauthn.credentialId),
            transports: ["internal"],
          },
        ],
        userVerification: "required",
        timeout: 120000,
      },
    });
    return {
      credential_id: b64u(credential.rawId),
      authenticator_data: b64u(credential.response.authenticatorData),
      client_data_json: b64u(credential.response.clientDataJSON),
      signature: b64u(credential.response.signature),
    };
  }

  // --- the live event stream --------------------------------------------------------------

  /// Reads GET /device/v1/events as a streamed fetch (EventSource cannot send the device's
  /// Authorization header), reconnecting with Last-Event-ID. `onEvent(name, data)`;
  /// `onState("live" | "reconnecting" | "stopped", detail)`. Returns a function that stops it.
  function openStream(device, onEvent, onState) {
    const abort = new AbortController();
    let lastId = null;
    let delay = 1000;
    const run = async () => {
      while (!abort.signal.aborted) {
        try {
          const headers = {
            Authorization: await deviceAuthorization(device, "GET", "/device/v1/events"),
            Accept: "text/event-stream",
          };
          if (lastId !== null) headers["Last-Event-ID"] = lastId;
          const response = await fetch("/device/v1/events", {
            headers,
            cache: "no-store",
            signal: abort.signal,
          });
          if (response.status === 401) {
            onState("stopped", "This device is no longer enrolled.");
            return;
          }
          if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
          onState("live");
          delay = 1000;
          await readEvents(response.body, (id, name, data) => {
            if (id !== null) lastId = id;
            onEvent(name, data);
          });
        } catch (e) {
          if (abort.signal.aborted) return;
        }
        onState("reconnecting");
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 15000);
      }
    };
    run();
    return () => abort.abort();
  }

  /// The text/event-stream format (HTML Living Standard §9.2.6): fields, comments, events
  /// dispatched at a blank line.
  async function readEvents(body, dispatch) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let event = { id: null, name: "message", data: [] };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      const lines = buffer.split(/\r\n|\r|\n/);
      buffer = lines.pop();
      for (const line of lines) {
        if (line === "") {
          if (event.data.length) dispatch(event.id, event.name, event.data.join("\n"));
          event = { id: null, name: "message", data: [] };
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let val = colon < 0 ? "" : line.slice(colon + 1);
        if (val.startsWith(" ")) val = val.slice(1);
        if (field === "event") event.name = val;
        else if (field === "data") event.data.push(val);
        else if (field === "id") event.id = val;
      }
    }
  }

  global.BackchannelDevice = {
    ApiError,
    loadDevice,
    saveDevice,
    forgetDevice,
    enrol,
    platformAuthenticator,
    registerWebAuthn,
    verifyChallenge,
    webauthnAssertion,
    decide,
    call,
    openStream,
    b64uDecode,
  };
})(self);
