// supabase-js 2.119.0's auth.admin against a live segbase /auth/v1: create, list (pagination), get, update, ban,
// delete. Usage: node tests/node/auth_admin.mjs <url> <anon key> <service key> <email> <password>; prints one JSON object.
import { createClient } from '@supabase/supabase-js'

const [url, anonKey, serviceKey, email, password] = process.argv.slice(2)
const options = { auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false } }
const admin = createClient(url, serviceKey, options).auth.admin
const out = {}
const err = (error) => (error ? { name: error.name, code: error.code ?? null, status: error.status ?? null } : null)

const created = await admin.createUser({ email, password, email_confirm: true, user_metadata: { plan: 'js' },
  app_metadata: { tier: 'gold' } })
out.create = { error: err(created.error), email: created.data.user?.email ?? null,
  confirmed: Boolean(created.data.user?.email_confirmed_at), userMetadata: created.data.user?.user_metadata ?? null,
  appMetadata: created.data.user?.app_metadata ?? null }
const id = created.data.user.id
out.duplicate = err((await admin.createUser({ email, password })).error)

const listed = await admin.listUsers({ page: 1, perPage: 1 })
out.list = { error: err(listed.error), count: listed.data.users.length, total: listed.data.total ?? null,
  nextPage: listed.data.nextPage ?? null, lastPage: listed.data.lastPage ?? null }

out.get = { error: err((await admin.getUserById(id)).error), id: (await admin.getUserById(id)).data.user?.id ?? null }
const updated = await admin.updateUserById(id, { user_metadata: { extra: 1 } })
out.update = { error: err(updated.error), userMetadata: updated.data.user?.user_metadata ?? null }

const user = createClient(url, anonKey, options)
const signedIn = await user.auth.signInWithPassword({ email, password })
out.signIn = err(signedIn.error)
const banned = await admin.updateUserById(id, { ban_duration: '24h' })
out.ban = { error: err(banned.error), bannedUntil: Boolean(banned.data.user?.banned_until) }
out.afterBan = err((await createClient(url, anonKey, options).auth.signInWithPassword({ email, password })).error)
out.refreshAfterBan = err((await user.auth.refreshSession()).error)
out.unban = err((await admin.updateUserById(id, { ban_duration: 'none' })).error)
out.afterUnban = err((await createClient(url, anonKey, options).auth.signInWithPassword({ email, password })).error)

out.notAdmin = err((await createClient(url, anonKey, options).auth.admin.listUsers()).error)
out.delete = err((await admin.deleteUser(id)).error)
out.afterDelete = err((await admin.getUserById(id)).error)
console.log(JSON.stringify(out))
