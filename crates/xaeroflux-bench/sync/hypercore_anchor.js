// Hypercore anchor for sync_bench: two in-process hypercores replicating over loopback TCP.
// Usage: npm install && node hypercore_anchor.js <events> <bytes>
const Hypercore = require('hypercore')
const net = require('net')
const os = require('os')
const fs = require('fs')
const path = require('path')

const N = Number(process.argv[2] || 100000)
const SIZE = Number(process.argv[3] || 128)

async function main () {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'hcbench-'))
  const a = new Hypercore(path.join(base, 'a'))
  await a.ready()
  let t = process.hrtime.bigint()
  const BATCH = 1000
  for (let i = 0; i < N; i += BATCH) {
    const blocks = []
    for (let j = i; j < Math.min(N, i + BATCH); j++) {
      const b = Buffer.alloc(SIZE); b.writeUInt32LE(j, 0); blocks.push(b)
    }
    await a.append(blocks)
  }
  const appendMs = Number(process.hrtime.bigint() - t) / 1e6
  console.log(`append ${N} x ${SIZE} B (batches of ${BATCH}): ${appendMs.toFixed(0)} ms => ${(N / appendMs * 1000).toFixed(0)} blocks/s`)

  const b = new Hypercore(path.join(base, 'b'), a.key, process.env.INFLIGHT ? { inflightRange: [Number(process.env.INFLIGHT), Number(process.env.INFLIGHT)] } : {})
  await b.ready()

  let rx = 0; let tx = 0
  const server = net.createServer(sock => {
    sock.on('data', d => { tx += 0 })
    const s = a.replicate(false)
    sock.pipe(s).pipe(sock)
  })
  await new Promise(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = server.address().port

  t = process.hrtime.bigint()
  const sock = net.connect(port, '127.0.0.1')
  sock.on('data', d => { rx += d.length })
  const s = b.replicate(true)
  sock.pipe(s).pipe(sock)
  await b.update({ wait: true })
  const tUpd = Number(process.hrtime.bigint() - t) / 1e6
  await b.download({ start: 0, end: a.length }).done()
  const ms = Number(process.hrtime.bigint() - t) / 1e6
  const payload = N * SIZE
  console.log(`replicate ${b.contiguousLength}/${N} blocks: ${ms.toFixed(0)} ms (length known after ${tUpd.toFixed(0)} ms) => ${(N / ms * 1000).toFixed(0)} blocks/s, payload ${(payload / 1e6).toFixed(1)} MB, wire bytes received by B ${(rx / 1e6).toFixed(1)} MB (overhead ${((rx - payload) / N).toFixed(0)} B/block)`)

  // verify a random block
  const blk = await b.get(12345 % N)
  if (blk.readUInt32LE(0) !== 12345 % N) throw new Error('bad block')

  sock.destroy(); server.close()
  await a.close(); await b.close()
  fs.rmSync(base, { recursive: true, force: true })
}
main().catch(e => { console.error(e); process.exit(1) })
