#!/usr/bin/env node
// A reverse proxy for the origin tests (127.0.0.1 only) that checks every request's OSS V1 or
// V4 signature with the official ali-oss SDK's own signing code, then forwards it, unsigned,
// to an S3-compatible upstream (s3rver) with path-style addressing. Requests whose signature
// differs from the SDK's get 403 SignatureDoesNotMatch, as OSS would answer.
//
//   node oss_verify_proxy.js --upstream 127.0.0.1:PORT --ak ID --sk SECRET --region cn-beijing
//                            [--token STS] [--log FILE]
// Prints "READY <port>" once listening.
'use strict';

const http = require('http');
const fs = require('fs');
const path = require('path');
const signUtils = require(path.join(__dirname, 'node_modules/ali-oss/lib/common/signUtils'));

const args = {};
for (let i = 2; i < process.argv.length; i += 2) {
  args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
}
const [upHost, upPort] = args.upstream.split(':');
const log = args.log ? fs.openSync(args.log, 'a') : null;

function record(entry) {
  if (log !== null) {
    fs.writeSync(log, `${JSON.stringify(entry)}\n`);
  }
}

function verify(req, url) {
  const headers = {};
  for (const [k, v] of Object.entries(req.headers)) headers[k.toLowerCase()] = v;
  const auth = headers.authorization || '';
  if (args.token && headers['x-oss-security-token'] !== args.token) return 'token';
  // Path-style: /bucket/key (the key may be empty for a listing).
  const parts = decodeURIComponent(url.pathname).split('/');
  const bucket = parts[1];
  const object = parts.slice(2).join('/');
  const queries = {};
  for (const [k, v] of url.searchParams.entries()) queries[k] = v;
  let expected;
  if (auth.startsWith('OSS4-HMAC-SHA256 ')) {
    expected = signUtils.authorizationV4(args.ak, args.sk, args.region, req.method,
      { headers, queries }, bucket, object || undefined, []);
  } else if (auth.startsWith('OSS ')) {
    // As the SDK's listV2: continuation-token is the only sub-resource our requests carry.
    const subres = {};
    if (queries['continuation-token']) subres['continuation-token'] = queries['continuation-token'];
    const resource = `/${bucket}/${object}`;
    const canonical = signUtils.buildCanonicalString(req.method, resource,
      { headers, parameters: subres });
    expected = `OSS ${args.ak}:${signUtils.computeSignature(args.sk, canonical)}`;
  } else {
    return 'no OSS signature';
  }
  return expected === auth ? null : 'mismatch';
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://proxy');
  const problem = verify(req, url);
  const kind = (req.headers.authorization || '').startsWith('OSS4') ? 'v4' : 'v1';
  record({ kind, path: url.pathname, ok: problem === null, problem });
  if (problem !== null) {
    const body = `<Error><Code>SignatureDoesNotMatch</Code><Message>${problem}</Message></Error>`;
    res.writeHead(403, { 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
    return;
  }
  const headers = {};
  for (const [k, v] of Object.entries(req.headers)) {
    const lk = k.toLowerCase();
    if (lk !== 'authorization' && !lk.startsWith('x-oss-')) headers[k] = v;
  }
  headers.host = `${upHost}:${upPort}`;
  const up = http.request({ host: upHost, port: upPort, method: req.method, path: req.url, headers },
    (upRes) => {
      res.writeHead(upRes.statusCode, upRes.headers);
      upRes.pipe(res);
    });
  up.on('error', () => {
    res.writeHead(502);
    res.end();
  });
  req.pipe(up);
});
server.keepAliveTimeout = 60000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`READY ${server.address().port}\n`);
});
