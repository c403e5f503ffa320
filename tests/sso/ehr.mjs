// The EHR side of a SMART App Launch, for the Rounds tests: a SMART authorization server
// (oidc-provider with a small SMART layer) and a FHIR R4 server (node-fhir-server-core)
// serving Patient and Encounter from fixtures/ehr-data.json, with bearer tokens checked by
// introspection against the authorization server.
//
//   node ehr.mjs --auth-port 0 --fhir-port 0 --redirect-uri http://127.0.0.1:8080/ehr/callback
//
// (or EHR_AUTH_PORT, EHR_FHIR_PORT, EHR_REDIRECT_URI). Prints one JSON line once both listen:
//   {"ready":true,"issuer":"http://127.0.0.1:A","fhir":"http://127.0.0.1:F/4_0_0",
//    "client_id":"rounds","client_secret":"..."}
//
// The SMART layer:
// - GET {fhir}/.well-known/smart-configuration (v2 and v1 permissions; POST /test/smart {v1_only:true}
//   advertises v1 only).
// - POST {issuer}/test/launch {patient, encounter?} -> {launch}: what an EHR does before it opens
//   the app's launch URL with ?iss={fhir}&launch={launch}.
// - At authorize: `aud` must equal the FHIR base URL; `launch`, when sent, must be one the EHR
//   made; PKCE (S256) is required of every client.
// - Standalone launch: authorize with no `launch` and scope `launch/patient` (and
//   `launch/encounter`); the server then picks the context a clinician would pick in its
//   patient picker, here fixtures' `standalone` patient and encounter.
// - The token response carries `patient` and `encounter` (when in context).
// - The login and consent screen: GET /interaction/{uid} is a page; POST .../confirm (form field
//   `practitioner`, default dr-okafor) signs that practitioner in and grants every requested
//   scope; POST .../abort denies consent (the app gets error=access_denied).
//
// Knobs for tests (all POST, JSON bodies):
// - {issuer}/test/code-ttl {seconds}: lifetime of the next authorization codes (default 60).
// - {issuer}/test/id-token {aud?, nonce?}: the next id_token is re-signed with this audience or
//   nonce, by the server's real key ({} clears).
// - {fhir}/../test/fail {status}: every FHIR request answers this HTTP status (0 clears).
// - GET {fhir}/../test/encounter/{id}: the stored Encounter (to see write-back).

import http from 'node:http';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

import Provider, { errors } from 'oidc-provider';
import * as jose from 'jose';

const require = createRequire(import.meta.url);
const express = require('express');
const passport = require('passport');
const { Strategy: BearerStrategy } = require('passport-http-bearer');
const { Server: FhirServer, resolveSchema } = require('@asymmetrik/node-fhir-server-core');

const here = dirname(fileURLToPath(import.meta.url));
const data = JSON.parse(readFileSync(join(here, 'fixtures', 'ehr-data.json'), 'utf8'));

function arg(name, envName, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  if (i > 0 && process.argv[i + 1] !== undefined) return process.argv[i + 1];
  return process.env[envName] ?? fallback;
}

const AUTH_PORT = Number(arg('auth-port', 'EHR_AUTH_PORT', '0'));
const FHIR_PORT = Number(arg('fhir-port', 'EHR_FHIR_PORT', '0'));
const REDIRECT_URI = arg('redirect-uri', 'EHR_REDIRECT_URI', 'http://127.0.0.1:8080/ehr/callback');
const CLIENT_ID = 'rounds';
const CLIENT_SECRET = 'rounds-ehr-client-secret-for-tests-only';
const RS_ID = 'fhir-server';
const RS_SECRET = 'fhir-server-introspection-secret';

const V2_SCOPES = ['patient/Patient.rs', 'patient/Encounter.rs', 'patient/Encounter.u', 'patient/Encounter.cruds'];
const V1_SCOPES = ['patient/Patient.read', 'patient/Encounter.read', 'patient/Encounter.write', 'patient/*.read'];
const SMART_SCOPES = ['openid', 'fhirUser', 'launch', 'launch/patient', 'launch/encounter', 'offline_access', ...V2_SCOPES, ...V1_SCOPES];

const knobs = { codeTtl: 60, idToken: {}, fhirFail: 0, v1Only: false };
const launches = new Map(); // launch id -> {patient, encounter}
const grantContext = new Map(); // grant id -> {patient, encounter}
const encounters = new Map(data.encounters.map((e) => [e.id, structuredClone(e)]));
const patients = new Map(data.patients.map((p) => [p.id, p]));

// Both servers listen first, so each knows the other's URL before it is configured.
const authHttp = http.createServer();
const fhirHttp = http.createServer();
await Promise.all([
  new Promise((r) => authHttp.listen(AUTH_PORT, '127.0.0.1', r)),
  new Promise((r) => fhirHttp.listen(FHIR_PORT, '127.0.0.1', r)),
]);
const ISSUER = `http://127.0.0.1:${authHttp.address().port}`;
const FHIR_ORIGIN = `http://127.0.0.1:${fhirHttp.address().port}`;
const FHIR_BASE = `${FHIR_ORIGIN}/4_0_0`;

// ---- the authorization server ----

const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
const signingJwk = { ...(await jose.exportJWK(privateKey)), kid: 'ehr-1', alg: 'RS256', use: 'sig' };

const provider = new Provider(ISSUER, {
  clients: [
    {
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      redirect_uris: [REDIRECT_URI],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
    { client_id: RS_ID, client_secret: RS_SECRET, redirect_uris: [], grant_types: [], response_types: [] },
  ],
  jwks: { keys: [signingJwk] },
  scopes: SMART_SCOPES,
  claims: { openid: ['sub'], fhirUser: ['fhirUser'], email: ['email'] },
  extraParams: {
    aud(ctx, value) {
      if (value !== FHIR_BASE) {
        throw new errors.InvalidRequest(`aud must be this EHR's FHIR base URL (${FHIR_BASE})`);
      }
    },
    launch(ctx, value) {
      if (value !== undefined && !launches.has(value)) {
        throw new errors.InvalidRequest('launch is not a launch this EHR started');
      }
    },
  },
  pkce: { required: () => true },
  // SMART apps read fhirUser from the id_token itself.
  conformIdTokenClaims: false,
  features: {
    devInteractions: { enabled: false },
    introspection: { enabled: true },
    revocation: { enabled: true },
  },
  ttl: {
    AuthorizationCode: () => knobs.codeTtl,
    AccessToken: () => 3600,
    IdToken: () => 3600,
    Grant: () => 3600,
    Interaction: () => 600,
    Session: () => 3600,
    RefreshToken: () => 86400,
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, id) {
    const practitioner = data.practitioners[id];
    if (!practitioner) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, fhirUser: `${FHIR_BASE}/Practitioner/${id}`, ...(practitioner.email ? { email: practitioner.email } : {}) };
      },
    };
  },
});

// The SMART additions to the token response, and the id_token knob.
provider.use(async (ctx, next) => {
  await next();
  if (ctx.path !== '/token' || ctx.status !== 200 || !ctx.body?.access_token) return;
  const token = await provider.AccessToken.find(ctx.body.access_token);
  const context = token && grantContext.get(token.grantId);
  if (context?.patient) ctx.body.patient = context.patient;
  if (context?.encounter) ctx.body.encounter = context.encounter;
  if (ctx.body.id_token && (knobs.idToken.aud || knobs.idToken.nonce)) {
    const claims = jose.decodeJwt(ctx.body.id_token);
    if (knobs.idToken.aud) claims.aud = knobs.idToken.aud;
    if (knobs.idToken.nonce) claims.nonce = knobs.idToken.nonce;
    ctx.body.id_token = await new jose.SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: 'ehr-1' }).sign(privateKey);
    knobs.idToken = {};
  }
});

const providerCallback = provider.callback();

function readBody(req) {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c) => { body += c; });
    req.on('end', () => resolve(body));
    req.on('error', reject);
  });
}

function sendJson(res, status, value) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(value));
}

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

async function interaction(req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new errors.SessionNotFound('interaction mismatch');
  if (!action) {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(`<!doctype html><title>EHR sign-in</title><h1>Sign in to the EHR and allow Rounds</h1>
<p>Rounds asks for: ${escapeHtml(details.params.scope ?? '')}</p>
<form method=post action="/interaction/${uid}/confirm"><input name=practitioner value=dr-okafor><button>Allow</button></form>
<form method=post action="/interaction/${uid}/abort"><button>Deny</button></form>`);
    return;
  }
  if (action === 'abort') {
    await provider.interactionFinished(req, res, { error: 'access_denied', error_description: 'The user denied access' }, { mergeWithLastSubmission: false });
    return;
  }
  const form = new URLSearchParams(await readBody(req));
  const { params } = details;
  const scopes = String(params.scope ?? '').split(' ');
  let context;
  if (params.launch) {
    context = launches.get(params.launch);
  } else if (scopes.includes('launch/patient')) {
    context = { patient: data.standalone.patient, ...(scopes.includes('launch/encounter') ? { encounter: data.standalone.encounter } : {}) };
  }
  const accountId = form.get('practitioner') || data.standalone.practitioner;
  const grant = new provider.Grant({ accountId, clientId: params.client_id });
  grant.addOIDCScope(scopes.join(' '));
  const grantId = await grant.save();
  if (context) grantContext.set(grantId, context);
  await provider.interactionFinished(req, res, { login: { accountId }, consent: { grantId } }, { mergeWithLastSubmission: false });
}

authHttp.on('request', async (req, res) => {
  try {
    const url = new URL(req.url, ISSUER);
    const m = url.pathname.match(/^\/interaction\/([^/]+)(?:\/(confirm|abort))?$/);
    if (m) return await interaction(req, res, m[1], m[2]);
    if (req.method === 'POST' && url.pathname.startsWith('/test/')) {
      const body = JSON.parse((await readBody(req)) || '{}');
      switch (url.pathname) {
        case '/test/launch': {
          if (!patients.has(body.patient)) return sendJson(res, 400, { error: 'unknown patient' });
          const launch = randomBytes(12).toString('hex');
          launches.set(launch, { patient: body.patient, ...(body.encounter ? { encounter: body.encounter } : {}) });
          return sendJson(res, 201, { launch });
        }
        case '/test/code-ttl':
          knobs.codeTtl = Number(body.seconds);
          return sendJson(res, 200, knobs);
        case '/test/id-token':
          knobs.idToken = body;
          return sendJson(res, 200, knobs);
        case '/test/smart':
          knobs.v1Only = Boolean(body.v1_only);
          return sendJson(res, 200, knobs);
        default:
          return sendJson(res, 404, { error: 'no such knob' });
      }
    }
    return providerCallback(req, res);
  } catch (err) {
    res.writeHead(400, { 'content-type': 'text/plain' });
    res.end(`EHR sign-in failed: ${err.message}`);
  }
});

// ---- the FHIR server ----

async function introspect(token) {
  const response = await fetch(`${ISSUER}/token/introspection`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${RS_ID}:${RS_SECRET}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({ token }),
  });
  return response.json();
}

// node-fhir-server-core checks v1 scopes (`.read`, `.write`); v2 scopes are granted as their v1
// meaning: `r`/`s` read, `c`/`u`/`d` write.
function asV1Scopes(scope) {
  const out = new Set();
  for (const s of String(scope ?? '').split(' ')) {
    const m = s.match(/^(patient|user|system)\/([A-Za-z*]+)\.([cruds]+)$/);
    if (!m) { out.add(s); continue; }
    if (/[rs]/.test(m[3])) out.add(`${m[1]}/${m[2]}.read`);
    if (/[cud]/.test(m[3])) out.add(`${m[1]}/${m[2]}.write`);
  }
  return [...out];
}

passport.use(new BearerStrategy(async (token, done) => {
  try {
    const info = await introspect(token);
    if (!info.active) return done(null, false);
    return done(null, { sub: info.sub, client_id: info.client_id }, { scope: asV1Scopes(info.scope) });
  } catch (err) {
    return done(err);
  }
}));

const app = express();
app.use(passport.initialize());
// The bearer strategy puts scopes in `info`; the scope checker reads them off the user.
// A broken FHIR server: its resources fail; discovery and the knobs still answer.
app.use((req, res, next) => {
  if (knobs.fhirFail && !req.path.startsWith('/test/') && !req.path.includes('/.well-known/')) {
    res.status(knobs.fhirFail).json({ resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'exception', details: { text: 'simulated failure' } }] });
    return;
  }
  next();
});
app.use((req, res, next) => {
  if (!req.headers.authorization || req.path.startsWith('/test/') || req.path.includes('/.well-known/') || req.path.endsWith('/metadata')) return next();
  passport.authenticate('bearer', { session: false }, (err, user, info) => {
    if (err) return next(err);
    if (!user) {
      res.set('WWW-Authenticate', 'Bearer error="invalid_token"');
      return res.status(401).json({ resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'login', details: { text: 'invalid or expired token' } }] });
    }
    req.user = { ...user, scope: info.scope };
    req.authenticatedBearer = true;
    return next();
  })(req, res, next);
});
app.get('/4_0_0/.well-known/smart-configuration', (req, res) => {
  const permissions = knobs.v1Only ? ['permission-v1'] : ['permission-v1', 'permission-v2'];
  res.json({
    issuer: ISSUER,
    jwks_uri: `${ISSUER}/jwks`,
    authorization_endpoint: `${ISSUER}/auth`,
    token_endpoint: `${ISSUER}/token`,
    introspection_endpoint: `${ISSUER}/token/introspection`,
    revocation_endpoint: `${ISSUER}/token/revocation`,
    token_endpoint_auth_methods_supported: ['client_secret_basic'],
    grant_types_supported: ['authorization_code', 'refresh_token'],
    scopes_supported: knobs.v1Only ? SMART_SCOPES.filter((s) => !V2_SCOPES.includes(s)) : SMART_SCOPES,
    response_types_supported: ['code'],
    code_challenge_methods_supported: ['S256'],
    capabilities: [
      'launch-ehr', 'launch-standalone', 'client-confidential-symmetric', 'sso-openid-connect',
      'context-ehr-patient', 'context-ehr-encounter', 'context-standalone-patient', 'context-standalone-encounter',
      ...permissions,
    ],
  });
});
app.post('/test/fail', express.json(), (req, res) => {
  knobs.fhirFail = Number(req.body?.status) || 0;
  res.json(knobs);
});
app.get('/test/encounter/:id', (req, res) => {
  const e = encounters.get(req.params.id);
  if (!e) return res.status(404).json({});
  return res.json(e);
});
// Without a bearer token, nothing but the discovery documents above.
app.use('/4_0_0', (req, res, next) => {
  if (req.authenticatedBearer || req.path.endsWith('/metadata')) return next();
  res.set('WWW-Authenticate', 'Bearer');
  return res.status(401).json({ resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'login', details: { text: 'a bearer token is required' } }] });
});

const notFound = (type, id) => {
  const OperationOutcome = resolveSchema('4_0_0', 'operationoutcome');
  const err = new OperationOutcome({ issue: [{ severity: 'error', code: 'not-found', details: { text: `${type}/${id} is not known` } }] });
  err.statusCode = 404;
  return err;
};

const patientService = {
  async searchById(args) {
    const p = patients.get(args.id);
    if (!p) throw notFound('Patient', args.id);
    return p;
  },
};
const encounterService = {
  async searchById(args) {
    const e = encounters.get(args.id);
    if (!e) throw notFound('Encounter', args.id);
    return e;
  },
  async update(args, { req }) {
    const existing = encounters.get(args.id);
    if (!existing) throw notFound('Encounter', args.id);
    const body = req.body ?? {};
    if (body.resourceType !== 'Encounter' || body.id !== args.id) {
      const OperationOutcome = resolveSchema('4_0_0', 'operationoutcome');
      const err = new OperationOutcome({ issue: [{ severity: 'error', code: 'invalid', details: { text: 'the body must be this Encounter' } }] });
      err.statusCode = 400;
      throw err;
    }
    encounters.set(args.id, { ...body });
    return { id: args.id, created: false };
  },
};

const fhir = new FhirServer({
  profiles: {
    patient: { service: patientService, versions: ['4_0_0'] },
    encounter: { service: encounterService, versions: ['4_0_0'] },
  },
  auth: { type: 'smart', strategy: { name: 'bearer', useSession: false } },
  server: { port: fhirHttp.address().port },
  logging: { level: 'error' },
}, app);
// The bearer check above already ran; the core's own passport step only needs to pass.
passport.use('bearer-checked', new (class extends passport.Strategy {
  authenticate(req) { return req.authenticatedBearer ? this.success(req.user) : this.fail(401); }
})());
fhir.config.auth.strategy.name = 'bearer-checked';
fhir.configureMiddleware().configureHelmet().setProfileRoutes().setErrorRoutes();
fhirHttp.on('request', fhir.app);

process.stdout.write(`${JSON.stringify({ ready: true, issuer: ISSUER, fhir: FHIR_BASE, client_id: CLIENT_ID, client_secret: CLIENT_SECRET, redirect_uri: REDIRECT_URI })}\n`);

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => process.exit(0));
}
