// supabase-js 2.119.0 realtime driver for tests/realtime: subscribes the channels given as JSON in argv[2] and
// prints one JSON line per status change, change event and system message. Commands arrive as JSON lines on
// stdin: {"cmd":"token","token":...} swaps the access token (setAuth sends `access_token` to every channel),
// {"cmd":"send"|"httpSend","channel","event","payload"} broadcasts, {"cmd":"track","channel","payload"} and
// {"cmd":"untrack","channel"} use presence (a channel spec may carry `config`, `broadcast` events and `presence`),
// {"cmd":"unsubscribe","channel":...}, {"cmd":"sync"} (a heartbeat round trip: its reply proves the server has
// handled every frame this client sent before it), {"cmd":"exit"}. Run with `node --experimental-websocket`.
import { createClient } from '@supabase/supabase-js'
import readline from 'node:readline'

const url = process.env.SUPABASE_URL
const anonKey = process.env.SUPABASE_ANON_KEY
let token = process.env.ACCESS_TOKEN || anonKey
const specs = JSON.parse(process.argv[2] || '[]')
const vsn = process.env.REALTIME_VSN // unset: the client's default (2.0.0)

const out = (line) => process.stdout.write(JSON.stringify(line) + '\n')

const supabase = createClient(url, anonKey, {
  accessToken: async () => token,
  realtime: vsn ? { vsn } : {},
})

// A signed-in app has its token before it subscribes; without this the first join races the async callback.
await supabase.realtime.setAuth()

const channels = {}
for (const spec of specs) {
  // spec.config: the channel's config (broadcast self/ack/replay, presence key, private), passed as an app does.
  const channel = supabase.channel(spec.name, spec.config ? { config: spec.config } : undefined)
  ;(spec.bindings || []).forEach((binding, index) => {
    channel.on('postgres_changes', binding, (payload) => out({ kind: 'change', channel: spec.name, binding: index, payload }))
  })
  for (const event of spec.broadcast || []) {
    channel.on('broadcast', { event }, (payload) => out({ kind: 'broadcast', channel: spec.name, payload }))
  }
  if (spec.presence) {
    channel.on('presence', { event: 'sync' }, () => out({ kind: 'presence-sync', channel: spec.name, state: channel.presenceState() }))
    channel.on('presence', { event: 'join' }, ({ key, newPresences }) => out({ kind: 'presence-join', channel: spec.name, key, newPresences }))
    channel.on('presence', { event: 'leave' }, ({ key, leftPresences }) => out({ kind: 'presence-leave', channel: spec.name, key, leftPresences }))
  }
  channel.on('system', {}, (payload) => out({ kind: 'system', channel: spec.name, payload }))
  channel.subscribe((status, err) => out({ kind: 'status', channel: spec.name, status, error: err ? String(err.message || err) : null }))
  channels[spec.name] = channel
}

const rl = readline.createInterface({ input: process.stdin })
rl.on('line', async (line) => {
  const command = JSON.parse(line)
  if (command.cmd === 'token') {
    token = command.token
    await supabase.realtime.setAuth()
    out({ kind: 'token-set' })
  } else if (command.cmd === 'sync') {
    // One heartbeat of ours at a time: wait until the client's own periodic one (if any) has its reply.
    while (supabase.realtime.socketAdapter.pendingHeartbeatRef) await new Promise((resolve) => setTimeout(resolve, 20))
    supabase.realtime.onHeartbeat((status) => {
      if (status === 'ok' || status === 'error' || status === 'timeout') {
        supabase.realtime.onHeartbeat(() => {})
        out({ kind: 'synced', status })
      }
    })
    await supabase.realtime.sendHeartbeat()
  } else if (command.cmd === 'send') {
    // channel.send over the socket (a binary frame with vsn 2.0.0); resolves 'ok', 'error' or 'timed out'.
    const status = await channels[command.channel].send({ type: 'broadcast', event: command.event, payload: command.payload })
    out({ kind: 'sent', channel: command.channel, status })
  } else if (command.cmd === 'httpSend') {
    try {
      await channels[command.channel].httpSend(command.event, command.payload)
      out({ kind: 'http-sent', channel: command.channel, status: 'ok' })
    } catch (error) {
      out({ kind: 'http-sent', channel: command.channel, status: 'error', error: String(error.message || error) })
    }
  } else if (command.cmd === 'track') {
    out({ kind: 'tracked', channel: command.channel, status: await channels[command.channel].track(command.payload) })
  } else if (command.cmd === 'untrack') {
    out({ kind: 'untracked', channel: command.channel, status: await channels[command.channel].untrack() })
  } else if (command.cmd === 'unsubscribe') {
    const status = await channels[command.channel].unsubscribe()
    out({ kind: 'unsubscribed', channel: command.channel, status })
  } else if (command.cmd === 'exit') {
    await supabase.removeAllChannels()
    process.exit(0)
  }
})
rl.on('close', () => process.exit(0))
