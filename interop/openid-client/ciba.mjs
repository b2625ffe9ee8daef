// CIBA poll-mode flow with openid-client v6 (an independent implementation) against a
// Backchannel server: discovery, private_key_jwt, backchannel authentication request, polling
// and ID-token validation. Prints one JSON line and exits 0 on success.
//
// Env: ISSUER, CLIENT_ID, PRIVATE_JWK (path to a private JWK JSON file), LOGIN_HINT;
// optional BINDING_MESSAGE, SCOPE.
import { readFileSync } from 'node:fs';
import * as client from 'openid-client';

const { ISSUER, CLIENT_ID, PRIVATE_JWK, LOGIN_HINT } = process.env;
for (const [name, value] of Object.entries({ ISSUER, CLIENT_ID, PRIVATE_JWK, LOGIN_HINT })) {
  if (!value) {
    console.error(`${name} is not set`);
    process.exit(2);
  }
}
const scope = process.env.SCOPE ?? 'openid';
const bindingMessage = process.env.BINDING_MESSAGE ?? 'interop test';

// Import the private JWK with WebCrypto alone.
const jwk = JSON.parse(readFileSync(PRIVATE_JWK, 'utf8'));
const importParams = (() => {
  switch (jwk.kty) {
    case 'EC':
      return { name: 'ECDSA', namedCurve: jwk.crv };
    case 'OKP':
      return { name: jwk.crv };
    case 'RSA':
      return jwk.alg === 'PS256'
        ? { name: 'RSA-PSS', hash: 'SHA-256' }
        : { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
    default:
      throw new Error(`unsupported key type ${jwk.kty}`);
  }
})();
const { kid, use, alg, key_ops, ...keyMaterial } = jwk;
const key = await crypto.subtle.importKey('jwk', keyMaterial, importParams, false, ['sign']);

const config = await client.discovery(
  new URL(ISSUER),
  CLIENT_ID,
  undefined,
  client.PrivateKeyJwt({ key, kid }),
  // The test issuer is http://127.0.0.1:PORT.
  { execute: [client.allowInsecureRequests] },
);

const ack = await client.initiateBackchannelAuthentication(config, {
  scope,
  login_hint: LOGIN_HINT,
  binding_message: bindingMessage,
});
if (typeof ack.auth_req_id !== 'string' || !(ack.expires_in > 0)) {
  throw new Error(`unexpected backchannel response ${JSON.stringify(ack)}`);
}

// Honours interval and slow_down; openid-client validates the ID token (signature against the
// JWKS, iss, aud, exp, iat) before returning.
const tokens = await client.pollBackchannelAuthenticationGrant(config, ack);
const claims = tokens.claims();
if (!claims || typeof claims.sub !== 'string' || claims.sub.length === 0) {
  throw new Error('token response has no ID token with a sub');
}

console.log(
  JSON.stringify({
    sub: claims.sub,
    iss: claims.iss,
    aud: claims.aud,
    token_type: tokens.token_type,
    expires_in: tokens.expires_in,
    scope: tokens.scope,
    access_token: typeof tokens.access_token === 'string' && tokens.access_token.length > 0,
    id_token: typeof tokens.id_token === 'string',
    auth_req_id_expires_in: ack.expires_in,
    interval: ack.interval,
  }),
);
