//! A real third-party OIDC provider on loopback that issues client-credentials JWT access tokens for tests.
//
// Configuration comes from the environment:
//   PORT      port to listen on (127.0.0.1 only); required
//   ALG       RS256 | ES256 | EdDSA: the access token signing algorithm (default RS256)
//   AUDIENCE  the `aud` claim of issued access tokens (default "portcullis")
//   CONSOLE_REDIRECT_URI  when set, a second client `portcullis-console` (public, authorization code with
//             PKCE, this redirect URI) and the provider's development login pages (any name, any
//             password, then a consent page): people signing in get groups reviewers and
//             portcullis-operators; client-credentials tokens keep groups agents
//
// RFC 8707 requires the resource indicator to be an absolute URI. When AUDIENCE is one, it is also the
// resource indicator; otherwise (e.g. "portcullis") the indicator is "urn:" + AUDIENCE and tokens still
// carry aud = AUDIENCE. The READY line names both so callers need not repeat this rule.
//
// Prints `READY <issuer> <resource>` on stdout once listening. Keys live only in memory: every start has
// a fresh signing key, so no test depends on state another one left behind.

import { generateKeyPairSync } from 'node:crypto';
import Provider, { errors } from 'oidc-provider';

const port = Number.parseInt(process.env.PORT ?? '', 10);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error(`PORT must be a TCP port, got ${JSON.stringify(process.env.PORT)}`);
  process.exit(2);
}
const alg = process.env.ALG ?? 'RS256';
const audience = process.env.AUDIENCE ?? 'portcullis';
const resource = URL.parse(audience) ? audience : `urn:${audience}`;
const issuer = `http://127.0.0.1:${port}`;
const consoleRedirect = process.env.CONSOLE_REDIRECT_URI;

function signingJwk(algorithm) {
  let pair;
  switch (algorithm) {
    case 'RS256':
      pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
      break;
    case 'ES256':
      pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      break;
    case 'EdDSA':
      pair = generateKeyPairSync('ed25519');
      break;
    default:
      console.error(`ALG must be RS256, ES256 or EdDSA, got ${JSON.stringify(algorithm)}`);
      process.exit(2);
  }
  return { ...pair.privateKey.export({ format: 'jwk' }), alg: algorithm, use: 'sig' };
}

const provider = new Provider(issuer, {
  jwks: { keys: [signingJwk(alg)] },
  clients: [
    {
      client_id: 'agent',
      client_secret: 'agent-secret',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_post',
      // The default (RS256) must be a key in the keystore; with an ES256 or EdDSA key it would not be.
      id_token_signed_response_alg: alg,
    },
    ...(consoleRedirect
      ? [
          {
            client_id: 'portcullis-console',
            token_endpoint_auth_method: 'none',
            grant_types: ['authorization_code'],
            response_types: ['code'],
            redirect_uris: [consoleRedirect],
            id_token_signed_response_alg: alg,
          },
        ]
      : []),
  ],
  clientAuthMethods: ['client_secret_post', 'client_secret_basic', 'none'],
  features: {
    devInteractions: { enabled: Boolean(consoleRedirect) },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, indicator) => {
        if (indicator !== resource) {
          throw new errors.InvalidTarget(`unknown resource indicator; this provider serves ${resource}`);
        }
        return {
          scope: 'db',
          audience,
          accessTokenFormat: 'jwt',
          accessTokenTTL: 300,
          jwt: { sign: { alg } },
        };
      },
    },
  },
  // A person (authorization code: the token has an account) reviews and operates; a client is an agent.
  extraTokenClaims: (ctx, token) =>
    token.accountId ? { groups: ['reviewers', 'portcullis-operators'] } : { groups: ['agents'] },
});

provider.on('server_error', (ctx, err) => console.error('server_error', err));

const server = provider.listen(port, '127.0.0.1', () => {
  console.log(`READY ${issuer} ${resource}`);
});
server.on('error', (err) => {
  console.error(`listen failed: ${err.message}`);
  process.exit(1);
});

// The test harness kills this process; SIGTERM from a shell should also end it promptly.
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => process.exit(0));
}
