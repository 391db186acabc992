// supabase-js 2.119.0's email flows against a live segbase /auth/v1, one step per run (the test reads the mails
// in between). Usage: node tests/node/auth_email.mjs <step> <url> <key> ...; prints one JSON object.
//   otp <email> <redirect>          signInWithOtp (no new user)
//   verify <email> <code>           verifyOtp with the typed code, then getUser
//   recover <email> <redirect>      resetPasswordForEmail
//   verify_hash <token_hash> <type> verifyOtp with the link's token hash, then getUser
//   change_email <email> <password> <new email>   sign in, updateUser({ email })
//   invite <email> <redirect>       auth.admin.inviteUserByEmail (key: the service key)
import { createClient } from '@supabase/supabase-js'

const [step, url, key, ...rest] = process.argv.slice(2)
const options = { auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false } }
const supabase = createClient(url, key, options)
const err = (error) => (error ? { name: error.name, code: error.code ?? null, status: error.status ?? null } : null)
let out

if (step === 'otp') {
  const { data, error } = await supabase.auth.signInWithOtp({ email: rest[0],
    options: { emailRedirectTo: rest[1], shouldCreateUser: false } })
  out = { error: err(error), user: data.user, session: data.session }
} else if (step === 'verify' || step === 'verify_hash') {
  const params = step === 'verify' ? { email: rest[0], token: rest[1], type: 'email' }
    : { token_hash: rest[0], type: rest[1] }
  const { data, error } = await supabase.auth.verifyOtp(params)
  const user = error ? null : (await supabase.auth.getUser()).data.user
  out = { error: err(error), email: user?.email ?? null, hasSession: Boolean(data.session) }
} else if (step === 'recover') {
  const { error } = await supabase.auth.resetPasswordForEmail(rest[0], { redirectTo: rest[1] })
  out = { error: err(error) }
} else if (step === 'change_email') {
  await supabase.auth.signInWithPassword({ email: rest[0], password: rest[1] })
  const { data, error } = await supabase.auth.updateUser({ email: rest[2] })
  out = { error: err(error), email: data.user?.email ?? null, newEmail: data.user?.new_email ?? null }
} else if (step === 'invite') {
  const { data, error } = await supabase.auth.admin.inviteUserByEmail(rest[0], { redirectTo: rest[1] })
  out = { error: err(error), invitedAt: data.user?.invited_at ?? null }
}
console.log(JSON.stringify(out))
