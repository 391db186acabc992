// supabase-js 2.119.0: the whole job loop as an app sees it, against `segbase run` with its demo backend. Signs in,
// uploads an image to the `images` bucket, subscribes to its results, inserts a pending result pointing at the
// image, waits until the result is done (live, over realtime), and downloads the mask with a signed URL.
// Input: one JSON argument {url, anonKey, email, password, png (base64)}; output: one JSON object.
// Run with `node --experimental-websocket`.
import { createClient } from '@supabase/supabase-js'

const cfg = JSON.parse(process.argv[2])
const supabase = createClient(cfg.url, cfg.anonKey, { auth: { persistSession: false, autoRefreshToken: false } })
const pick = ({ data, error, status }) => ({ data, error: error ? { message: error.message, ...error } : null, status })
const out = { statuses: [] }
const finish = (code) => {
  process.stdout.write(JSON.stringify(out) + '\n')
  process.exit(code)
}
setTimeout(() => { out.timedOut = true; finish(1) }, 120_000)

const { data: session, error: signInError } = await supabase.auth.signInWithPassword({ email: cfg.email, password: cfg.password })
if (signInError) { out.signIn = signInError.message; finish(1) }
const userId = session.user.id
await supabase.realtime.setAuth()

out.upload = pick(await supabase.storage.from('images').upload(`${userId}/in.png`, Buffer.from(cfg.png, 'base64'),
  { contentType: 'image/png' }))

let resultId = null
const early = []
let resolveFinal
const final = new Promise((resolve) => { resolveFinal = resolve })
const onChange = (row) => {
  out.statuses.push(row.status)
  if (row.status === 'done' || row.status === 'error') resolveFinal(row)
}
const subscribed = new Promise((resolve) => {
  supabase.channel('my-jobs')
    .on('postgres_changes', { event: 'UPDATE', schema: 'public', table: 'segmentation_results', filter: `user_id=eq.${userId}` },
      (payload) => (resultId === null ? early.push(payload.new) : payload.new.id === resultId && onChange(payload.new)))
    .subscribe((status) => { if (status === 'SUBSCRIBED') resolve() })
})
await subscribed

out.insert = pick(await supabase.from('segmentation_results')
  .insert({ source_image_url: `${cfg.url}/storage/v1/object/authenticated/images/${userId}/in.png`, text_prompt: 'a bright square' })
  .select().single())
resultId = out.insert.data.id
early.filter((row) => row.id === resultId).forEach(onChange)

out.final = await final
out.signed = pick(await supabase.storage.from('masks').createSignedUrl(`${userId}/${resultId}.png`, 60))
const response = await fetch(out.signed.data.signedUrl)
const bytes = Buffer.from(await response.arrayBuffer())
out.mask = { status: response.status, contentType: response.headers.get('content-type'), magic: bytes.subarray(0, 8).toString('hex'), bytes: bytes.length }
await supabase.removeAllChannels()
finish(0)
