// A tiny upstream for scripts/test-container.sh: listens on 127.0.0.1, port 0,
// writes the port it got to the file named by argv[2], and answers every
// request with a JSON echo of what breakwater forwarded. Plain JavaScript so
// any Node on the host runs it. Stops on SIGTERM or after 10 minutes at most.
import { createServer } from 'node:http';
import { writeFileSync } from 'node:fs';

const portFile = process.argv[2];
if (!portFile) {
  console.error('usage: node upstream.mjs PORT_FILE');
  process.exit(2);
}

let served = 0;
const server = createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    served += 1;
    const body = JSON.stringify({
      upstream: 'container-test',
      served,
      method: req.method,
      url: req.url,
      host: req.headers.host ?? null,
      requestId: req.headers['x-request-id'] ?? null,
      bodyBytes: Buffer.concat(chunks).length,
    });
    res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': 'container-test' });
    res.end(body);
  });
});

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  writeFileSync(portFile, String(port));
});

const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
setTimeout(stop, 10 * 60_000).unref();
