// supabase-js 2.119.0 against a live segbase /auth/v1: sign-up, typed errors, sign-in, user, refresh, sign-out.
// Usage: node tests/node/auth_flow.mjs <url> <anon key> <email> <password>; prints one JSON object.
import { createClient } from '@supabase/supabase-js'

const [url, anonKey, email, password] = process.argv.slice(2)
const options = { auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false } }
const supabase = createClient(url, anonKey, options)
const out = {}
const err = (error) => (error ? { name: error.name, code: error.code ?? null, status: error.status ?? null,
  reasons: error.reasons ?? null } : null)

const signUp = await supabase.auth.signUp({ email, password, options: { data: { display_name: 'Js' } } })
out.signUp = { error: err(signUp.error), userEmail: signUp.data.user?.email ?? null,
  hasSession: Boolean(signUp.data.session), metadata: signUp.data.user?.user_metadata ?? null }

const other = createClient(url, anonKey, options)
out.duplicate = err((await other.auth.signUp({ email, password })).error)
out.weak = err((await other.auth.signUp({ email: `weak-${email}`, password: 'short' })).error)
out.wrongPassword = err((await other.auth.signInWithPassword({ email, password: 'wrong password!' })).error)

const signIn = await supabase.auth.signInWithPassword({ email, password })
out.signIn = { error: err(signIn.error), userId: signIn.data.user?.id ?? null,
  expiresIn: signIn.data.session?.expires_in ?? null }
const firstAccess = signIn.data.session.access_token
const firstRefresh = signIn.data.session.refresh_token

const user = await supabase.auth.getUser()
out.getUser = { error: err(user.error), email: user.data.user?.email ?? null }

const updated = await supabase.auth.updateUser({ data: { plan: 'edge' } })
out.updateUser = { error: err(updated.error), metadata: updated.data.user?.user_metadata ?? null }

const refreshed = await supabase.auth.refreshSession()
out.refresh = { error: err(refreshed.error), rotated: refreshed.data.session?.refresh_token !== firstRefresh,
  sameUser: refreshed.data.user?.id === signIn.data.user.id }

const profile = await supabase.from('users_profile').select('display_name, tier').maybeSingle()
out.profile = { error: profile.error ? profile.error.message : null, data: profile.data ?? null }

out.signOut = err((await supabase.auth.signOut()).error)
const after = await other.auth.getUser(firstAccess)
out.afterSignOut = err(after.error)

console.log(JSON.stringify(out))
