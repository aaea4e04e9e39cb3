#!/usr/bin/env node
// A reverse proxy for the origin tests (127.0.0.1 only) that checks every request's OSS V1 or
// V4 signature with the official ali-oss SDK's own signing code, then forwards it, unsigned,
// to an S3-compatible upstream (s3rver) with path-style addressing. Requests whose signature
// differs from the SDK's get 403 SignatureDoesNotMatch, as OSS would answer.
//
// Like OSS, it takes the bucket from the Host header when that is BUCKET.<--endpoint-host>
// (virtual-hosted: /key), and from the path when the Host is the endpoint itself or an IP
// address (path-style: /bucket/key); any other Host gets 400. Without --endpoint-host every
// request is path-style.
//
//   node oss_verify_proxy.js --upstream 127.0.0.1:PORT --ak ID --sk SECRET --region cn-beijing
//                            [--token STS] [--endpoint-host NAME] [--port N] [--log FILE]
// Prints "READY <port>" once listening; logs one JSON line per request (kind, host, style,
// bucket, path, ok, problem).
'use strict';

const http = require('http');
const net = require('net');
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

// {style, bucket, object} of a request as OSS would read it, or null for an unknown Host.
function addressing(req, url) {
  const hostname = (req.headers.host || '').replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
  const pathname = decodeURIComponent(url.pathname);
  const endpoint = args['endpoint-host'];
  if (endpoint && hostname.endsWith(`.${endpoint}`)) {
    const bucket = hostname.slice(0, -endpoint.length - 1);
    return { style: 'virtual-hosted', bucket, object: pathname.slice(1) };
  }
  if (!endpoint || hostname === endpoint || net.isIP(hostname)) {
    // The key may be empty for a listing.
    const parts = pathname.split('/');
    return { style: 'path', bucket: parts[1], object: parts.slice(2).join('/') };
  }
  return null;
}

function verify(req, url, { bucket, object }) {
  const headers = {};
  for (const [k, v] of Object.entries(req.headers)) headers[k.toLowerCase()] = v;
  const auth = headers.authorization || '';
  if (args.token && headers['x-oss-security-token'] !== args.token) return 'token';
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
    // The canonical resource is /bucket/key in both addressing styles.
    const resource = `/${bucket}/${object}`;
    const canonical = signUtils.buildCanonicalString(req.method, resource,
      { headers, parameters: subres });
    expected = `OSS ${args.ak}:${signUtils.computeSignature(args.sk, canonical)}`;
  } else {
    return 'no OSS signature';
  }
  return expected === auth ? null : 'mismatch';
}

function reply(res, status, code, message) {
  const body = `<Error><Code>${code}</Code><Message>${message}</Message></Error>`;
  res.writeHead(status, { 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://proxy');
  const kind = (req.headers.authorization || '').startsWith('OSS4') ? 'v4' : 'v1';
  const where = addressing(req, url);
  const problem = where === null ? 'unknown host' : verify(req, url, where);
  record({ kind, host: req.headers.host, style: where && where.style,
    bucket: where && where.bucket, path: url.pathname, ok: problem === null, problem });
  if (where === null) {
    reply(res, 400, 'InvalidRequest', `unknown host ${req.headers.host}`);
    return;
  }
  if (problem !== null) {
    reply(res, 403, 'SignatureDoesNotMatch', problem);
    return;
  }
  const headers = {};
  for (const [k, v] of Object.entries(req.headers)) {
    const lk = k.toLowerCase();
    if (lk !== 'authorization' && !lk.startsWith('x-oss-')) headers[k] = v;
  }
  headers.host = `${upHost}:${upPort}`;
  // Upstream, always path-style.
  const upPath = where.style === 'path' ? req.url : `/${where.bucket}${req.url}`;
  const up = http.request({ host: upHost, port: upPort, method: req.method, path: upPath, headers },
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
server.listen(Number(args.port || 0), '127.0.0.1', () => {
  process.stdout.write(`READY ${server.address().port}\n`);
});
