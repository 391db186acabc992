// Jest setup file (passed with --setupFilesAfterEnv by tests/conformance/postgrest_js.py): records each test that
// sends a request to the server under test, so the report can count server-reaching tests apart from the ones
// that only exercise the client (mocked fetch, unreachable hosts).
const fs = require('fs')
const path = require('path')

const log = process.env.SEGBASE_REACHED_LOG
const serverUrl = process.env.SEGBASE_SUITE_URL
const originalFetch = globalThis.fetch

globalThis.fetch = function recordingFetch(input, init) {
  const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input && input.url
  if (log && serverUrl && typeof url === 'string' && url.startsWith(serverUrl)) {
    const state = expect.getState()
    if (state.currentTestName) {
      fs.appendFileSync(log, `${path.basename(state.testPath)}\t${state.currentTestName}\n`)
    }
  }
  return originalFetch(input, init)
}
