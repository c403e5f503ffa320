// A hospital identity provider for the SSO tests: oidc-provider on 127.0.0.1 with a
// plain login form and a consent page (Allow / Deny) that a test can drive with plain
// HTTP, acting as the clinician's system browser.
//
//   node tests/sso/idp.mjs [--port N] [--config FILE-OR-JSON]
//
// The port also comes from IDP_PORT and the config from IDP_CONFIG; port 0 picks a free
// one. When it is ready it prints one line on stdout: {"issuer": "...", "port": N}.
//
// Config (JSON, every key optional):
//   clients       oidc-provider client metadata; default: the Rounds desktop app, a public
//                 native client with PKCE and a loopback redirect on any port (RFC 8252)
//   accounts      a file of accounts, or the accounts themselves; default
//                 fixtures/clinicians.json: { sub, login, password, email, name, fhirUser }
//   codeTtlSecs   lifetime of an authorization code (default 60)
//   tamper        { "aud": "..." } re-signs every id_token with that audience, with the
//                 provider's own key, so a relying party's audience check can be tested
//
// Other fixtures can import startIdp() and pass providerOptions (merged into the
// oidc-provider configuration) and extend(provider) to add their own behaviour.

import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import Provider from 'oidc-provider';

const here = path.dirname(fileURLToPath(import.meta.url));

export const DEFAULT_CLIENTS = [
  {
    client_id: 'rounds-desktop',
    application_type: 'native',
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code'],
    response_types: ['code'],
    // A native client's loopback redirect matches on any port.
    redirect_uris: ['http://127.0.0.1/callback'],
  },
];

export async function startIdp({
  port = 0,
  clients = DEFAULT_CLIENTS,
  accounts = path.join(here, 'fixtures', 'clinicians.json'),
  codeTtlSecs = 60,
  tamper = undefined,
  providerOptions = {},
  extend = undefined,
} = {}) {
  const people = typeof accounts === 'string' ? JSON.parse(fs.readFileSync(accounts, 'utf8')) : accounts;
  const bySub = new Map(people.map((a) => [a.sub, a]));

  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'idp-1', alg: 'RS256', use: 'sig' };

  const server = http.createServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  const actualPort = server.address().port;
  const issuer = `http://127.0.0.1:${actualPort}`;

  const provider = new Provider(issuer, {
    clients,
    jwks: { keys: [signingKey] },
    cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
    findAccount: async (_ctx, sub) => {
      const a = bySub.get(sub);
      if (!a) return undefined;
      return {
        accountId: sub,
        claims: async () => ({ sub, email: a.email, email_verified: true, name: a.name, fhirUser: a.fhirUser }),
      };
    },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
      fhirUser: ['fhirUser'],
    },
    // Put the requested claims in the id_token itself: Rounds reads them from there.
    conformIdTokenClaims: false,
    features: { devInteractions: { enabled: false } },
    pkce: { required: () => true },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    ttl: {
      AuthorizationCode: codeTtlSecs,
      AccessToken: 3600,
      IdToken: 3600,
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
    },
    ...providerOptions,
  });

  if (tamper?.aud) {
    provider.use(async (ctx, next) => {
      await next();
      if (ctx.path === '/token' && ctx.body?.id_token) {
        ctx.body.id_token = resign(ctx.body.id_token, { aud: tamper.aud }, privateKey);
      }
    });
  }
  if (extend) await extend(provider);

  const oidc = provider.callback();
  server.on('request', (req, res) => {
    const { pathname } = new URL(req.url, issuer);
    const m = pathname.match(/^\/interaction\/([\w-]+)(?:\/(login|confirm|abort))?$/);
    if (!m) return oidc(req, res);
    interaction(provider, bySub, people, req, res, m[2]).catch((err) => {
      console.error(`interaction failed: ${err.message}`);
      page(res, 400, 'Sign-in failed', `<p>${esc(err.message)}</p>`);
    });
  });

  return {
    issuer,
    port: actualPort,
    provider,
    server,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

async function interaction(provider, bySub, people, req, res, action) {
  const details = await provider.interactionDetails(req, res);
  const { uid, prompt, params, session } = details;

  if (action === 'abort') {
    return provider.interactionFinished(req, res, {
      error: 'access_denied',
      error_description: 'The user declined to sign in to this application.',
    }, { mergeWithLastSubmission: false });
  }

  if (action === 'login') {
    const form = await readForm(req);
    const who = form.get('login') ?? '';
    const account = people.find((a) => a.login === who || a.email === who);
    if (!account || account.password !== form.get('password')) {
      return page(res, 401, 'Sign in', loginForm(uid, 'That user name and password do not match.'));
    }
    return provider.interactionFinished(req, res, { login: { accountId: account.sub } }, {
      mergeWithLastSubmission: false,
    });
  }

  if (action === 'confirm') {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const missing = prompt.details;
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    if (missing.missingResourceScopes) {
      for (const [indicator, scope] of Object.entries(missing.missingResourceScopes)) {
        grant.addResourceScope(indicator, scope.join(' '));
      }
    }
    return provider.interactionFinished(req, res, { consent: { grantId: await grant.save() } }, {
      mergeWithLastSubmission: true,
    });
  }

  if (prompt.name === 'login') return page(res, 200, 'Sign in', loginForm(uid));
  const who = bySub.get(session?.accountId)?.name ?? 'you';
  return page(res, 200, 'Allow access', `
    <p>${esc(params.client_id)} asks to know who ${esc(who)} is (${esc(params.scope)}).</p>
    <form method="post" action="/interaction/${uid}/confirm"><button type="submit">Allow</button></form>
    <form method="post" action="/interaction/${uid}/abort"><button type="submit">Deny</button></form>`);
}

function loginForm(uid, error) {
  return `${error ? `<p role="alert">${esc(error)}</p>` : ''}
    <form method="post" action="/interaction/${uid}/login">
      <label>User name <input name="login" autocomplete="username"></label>
      <label>Password <input name="password" type="password" autocomplete="current-password"></label>
      <button type="submit">Sign in</button>
    </form>`;
}

function page(res, status, title, body) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(`<!doctype html><title>${esc(title)}</title><h1>${esc(title)}</h1>${body}`);
}

async function readForm(req) {
  let body = '';
  for await (const chunk of req) body += chunk;
  return new URLSearchParams(body);
}

function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function resign(jwt, changes, privateKey) {
  const [header, payload] = jwt.split('.');
  const claims = { ...JSON.parse(Buffer.from(payload, 'base64url')), ...changes };
  const input = `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  const signature = crypto.sign('sha256', Buffer.from(input), privateKey).toString('base64url');
  return `${input}.${signature}`;
}

function readConfig(value) {
  if (!value) return {};
  return JSON.parse(value.trimStart().startsWith('{') ? value : fs.readFileSync(value, 'utf8'));
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const args = process.argv.slice(2);
  const arg = (name) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const config = readConfig(arg('--config') ?? process.env.IDP_CONFIG);
  const port = Number(arg('--port') ?? process.env.IDP_PORT ?? config.port ?? 0);
  const idp = await startIdp({ ...config, port });
  process.stdout.write(`${JSON.stringify({ issuer: idp.issuer, port: idp.port })}\n`);
  const stop = () => idp.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
