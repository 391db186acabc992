// supabase-js: replaying a rotated refresh token (no reuse interval on the server) is refused with
// refresh_token_already_used, and the session is revoked. Usage: node auth_reuse.mjs <url> <anon key> <email>
import { createClient } from '@supabase/supabase-js'

const [url, anonKey, email] = process.argv.slice(2)
const options = { auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false } }
const supabase = createClient(url, anonKey, options)
const err = (error) => (error ? { name: error.name, code: error.code ?? null, status: error.status ?? null } : null)

const { data } = await supabase.auth.signUp({ email, password: 'correct horse battery' })
const first = data.session.refresh_token
const second = (await supabase.auth.refreshSession()).data.session
const third = (await supabase.auth.refreshSession()).data.session
const replay = await createClient(url, anonKey, options).auth.refreshSession({ refresh_token: first })
const afterReplay = await createClient(url, anonKey, options).auth.getUser(third.access_token)
console.log(JSON.stringify({ rotated: second.refresh_token !== first && third.refresh_token !== second.refresh_token,
  replay: err(replay.error), afterReplay: err(afterReplay.error) }))
