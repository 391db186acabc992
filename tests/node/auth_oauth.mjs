// supabase-js 2.119.0 against a live segbase /auth/v1 with Google pointed at a local OpenID provider:
// signInWithIdToken (nonce), signInWithOAuth in PKCE mode (redirects followed like a browser, then
// exchangeCodeForSession), linkIdentity with an ID token and through the redirect flow, unlinkIdentity.
// Usage: node tests/node/auth_oauth.mjs <url> <anon key> <config JSON>; prints one JSON object.
import { createClient } from '@supabase/supabase-js'

const [url, anonKey, configJson] = process.argv.slice(2)
const config = JSON.parse(configJson)
const client = (flowType = 'implicit') => createClient(url, anonKey, {
  auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false, flowType },
})
const err = (error) => (error ? { name: error.name, code: error.code ?? null, status: error.status ?? null,
  message: error.message } : null)
const out = {}

// Follow the 302s from /authorize through the provider and /callback until the app's URL.
async function follow (start) {
  let next = start
  for (let hop = 0; hop < 6; hop++) {
    if (next.startsWith(config.site)) return next
    const answer = await fetch(next, { redirect: 'manual' })
    next = answer.headers.get('location')
    if (!next) throw new Error(`no redirect from ${answer.url}: ${answer.status}`)
  }
  throw new Error(`too many redirects: ${next}`)
}

// 1. Native: an ID token with a nonce
const native = client()
const events = []
native.auth.onAuthStateChange((event) => events.push(event))
const idToken = await native.auth.signInWithIdToken({ provider: 'google', token: config.idToken, nonce: config.nonce })
out.idToken = { error: err(idToken.error), email: idToken.data.user?.email ?? null,
  providers: idToken.data.user?.app_metadata?.providers ?? null }
out.badNonce = err((await client().auth.signInWithIdToken({ provider: 'google', token: config.idToken,
  nonce: 'another nonce' })).error)

// 2. Redirect flow, PKCE
const pkce = client('pkce')
const oauth = await pkce.auth.signInWithOAuth({ provider: 'google', options: { redirectTo: `${config.site}/cb`,
  skipBrowserRedirect: true, queryParams: { login_hint: config.pkceHint } } })
const landed = new URL(await follow(oauth.data.url))
const exchanged = await pkce.auth.exchangeCodeForSession(landed.searchParams.get('code'))
out.pkce = { error: err(exchanged.error), email: exchanged.data.user?.email ?? null,
  providerToken: Boolean(exchanged.data.session?.provider_token),
  getUser: (await pkce.auth.getUser()).data.user?.email ?? null }

// 3. Linking: an email user links Google by ID token, unlinks it, links it again through the redirect flow
const linker = client()
const signUp = await linker.auth.signUp({ email: config.linkEmail, password: config.password })
out.signUp = err(signUp.error)
const linked = await linker.auth.linkIdentity({ provider: 'google', token: config.linkIdToken })
out.linkIdToken = { error: err(linked.error), sameUser: linked.data.user?.id === signUp.data.user?.id }
const identities = (await linker.auth.getUserIdentities()).data.identities
out.identitiesAfterLink = identities.map((identity) => identity.provider)
const unlinked = await linker.auth.unlinkIdentity(identities.find((identity) => identity.provider === 'google'))
out.unlink = err(unlinked.error)
out.identitiesAfterUnlink = (await linker.auth.getUserIdentities()).data.identities.map((i) => i.provider)
const lastOne = (await linker.auth.getUserIdentities()).data.identities[0]
out.unlinkLast = err((await linker.auth.unlinkIdentity(lastOne)).error)
const redirectLink = await linker.auth.linkIdentity({ provider: 'google', options: {
  redirectTo: `${config.site}/linked`, skipBrowserRedirect: true, queryParams: { login_hint: config.linkHint } } })
out.linkRedirect = { error: err(redirectLink.error) }
const linkedLanding = new URL(await follow(redirectLink.data.url))
out.linkRedirect.landedWithSession = new URLSearchParams(linkedLanding.hash.slice(1)).has('access_token')
out.identitiesAfterRedirectLink = (await linker.auth.getUserIdentities()).data.identities.map((i) => i.provider)
out.events = events

console.log(JSON.stringify(out))
