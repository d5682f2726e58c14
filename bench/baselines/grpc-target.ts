/**
 * The gRPC target of the `grpc` scenario: an h2c server that answers every
 * unary call with one 128-byte message and `grpc-status: 0` in trailers, as a
 * gRPC server does, without a protobuf codec (the bench measures the proxies,
 * not message decoding).
 *
 *   TARGET_PORT=18080 node bench/baselines/grpc-target.ts
 */
import http2 from 'node:http2';
import { exitWhenParentGoes } from '../lib/child-guard.ts';

const port = Number(process.env['TARGET_PORT'] ?? 18080);
const MESSAGE = Buffer.concat([Buffer.from([0, 0, 0, 0, 128]), Buffer.alloc(128, 0x78)]);
const HEAD = { ':status': 200, 'content-type': 'application/grpc' };
const TRAILERS = { 'grpc-status': '0' };

const server = http2.createServer({ settings: { maxConcurrentStreams: 1000 } });
server.on('stream', (stream) => {
  stream.on('error', () => {});
  stream.resume();
  stream.once('end', () => {
    if (stream.destroyed) return;
    stream.respond(HEAD, { waitForTrailers: true });
    stream.once('wantTrailers', () => stream.sendTrailers(TRAILERS));
    stream.end(MESSAGE);
  });
});
server.on('sessionError', () => {});
server.listen(port, '127.0.0.1');
exitWhenParentGoes(() => server.close());
