// A CIBA server no one here wrote, for the relying-party library's tests: panva's
// oidc-provider with features.ciba (poll mode), started by rp_oidc_provider.rs on loopback.
//
// Environment: PORT (provider), DEVICE_PORT (the test's stand-in for the user's device:
// POST /approve/:auth_req_id, POST /deny/:auth_req_id), CLIENT_JWKS (the public JWKS of the
// private_key_jwt client, JSON). Prints "ready <issuer>" once both ports listen.

import * as crypto from 'node:crypto';
import * as http from 'node:http';

import Provider, { errors } from 'oidc-provider';

const HOST = '127.0.0.1';
const PORT = Number(process.env.PORT);
const DEVICE_PORT = Number(process.env.DEVICE_PORT);
const ISSUER = `http://${HOST}:${PORT}`;
const CIBA = 'urn:openid:params:grant-type:ciba';

const signing = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
const opKey = { ...signing.export({ format: 'jwk' }), kid: 'op-es256', alg: 'ES256', use: 'sig' };

const users = { 'alice@example.com': 'alice' };

const provider = new Provider(ISSUER, {
  clients: [
    {
      client_id: 'rp-basic',
      client_secret: 'rp-basic-secret-0123456789abcdef0123',
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: [CIBA],
      response_types: [],
      redirect_uris: [],
      backchannel_token_delivery_mode: 'poll',
      id_token_signed_response_alg: 'ES256',
    },
    {
      client_id: 'rp-pkjwt',
      token_endpoint_auth_method: 'private_key_jwt',
      token_endpoint_auth_signing_alg: 'ES256',
      jwks: JSON.parse(process.env.CLIENT_JWKS),
      grant_types: [CIBA],
      response_types: [],
      redirect_uris: [],
      backchannel_token_delivery_mode: 'poll',
      id_token_signed_response_alg: 'ES256',
    },
  ],
  jwks: { keys: [opKey] },
  cookies: { keys: [crypto.randomBytes(16).toString('hex')] },
  scopes: ['openid', 'email'],
  claims: { openid: ['sub'], email: ['email'] },
  async findAccount(ctx, id) {
    return { accountId: id, async claims() { return { sub: id, email: `${id}@example.com` }; } };
  },
  features: {
    devInteractions: { enabled: false },
    ciba: {
      enabled: true,
      deliveryModes: ['poll'],
      async processLoginHint(ctx, hint) { return users[hint]; },
      async processLoginHintToken() { throw new errors.InvalidRequest('login_hint_token unsupported'); },
      async validateBindingMessage(ctx, message) {
        if (message !== undefined && !/^[\w .,!?-]{1,40}$/.test(message)) {
          throw new errors.InvalidBindingMessage('binding_message must be 1-40 plain characters');
        }
      },
      async validateRequestContext() {},
      async verifyUserCode() {},
      async triggerAuthenticationDevice() {},
    },
  },
});

async function decide(action, id) {
  const request = await provider.BackchannelAuthenticationRequest.find(id);
  if (!request) return 404;
  if (action === 'deny') {
    await provider.backchannelResult(request, new errors.AccessDenied('the user denied the request'));
    return 200;
  }
  const grant = new provider.Grant({ accountId: request.accountId, clientId: request.clientId });
  grant.addOIDCScope(request.scope);
  await grant.save();
  await provider.backchannelResult(request, grant, { amr: ['hwk'], authTime: Math.floor(Date.now() / 1000) });
  return 200;
}

const device = http.createServer(async (req, res) => {
  req.resume();
  const m = req.method === 'POST' && req.url.match(/^\/(approve|deny)\/([^/?]+)$/);
  const status = m ? await decide(m[1], decodeURIComponent(m[2])).catch(() => 500) : 404;
  res.writeHead(status).end();
});

let listening = 0;
const ready = () => { if (++listening === 2) console.log(`ready ${ISSUER}`); };
provider.listen(PORT, HOST, ready);
device.listen(DEVICE_PORT, HOST, ready);
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(0));
