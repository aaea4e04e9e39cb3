#!/usr/bin/env node
// Generates oss_vectors.json with the official ali-oss SDK (OSS V1 and V4 signing).
//
// Run once and commit the output; fetch_test checks that our OSS signers reproduce every
// Authorization header byte for byte. Time is frozen and the keys are made up. Usage:
//   dir=$(mktemp -d) && (cd $dir && npm install ali-oss@6.23.0) &&
//   NODE_PATH=$dir/node_modules node gen_oss_vectors.js > oss_vectors.json
'use strict';

const FROZEN_MS = Date.UTC(2026, 10, 21, 5, 8, 13);
const RealDate = Date;
global.Date = class extends RealDate {
  constructor(...args) {
    if (args.length === 0) {
      super(FROZEN_MS);
    } else {
      super(...args);
    }
  }
  static now() {
    return FROZEN_MS;
  }
};

const OSS = require('ali-oss');
const { createRequest } = require('ali-oss/lib/common/utils/createRequest');
const version = require('ali-oss/package.json').version;

const cases = [
  {
    name: 'get-range',
    region: 'oss-cn-beijing', bucket: 'conf-ai', key: 'qwen2.5-3b-gocryptfs/AbC-dEf_gh',
    headers: { range: 'bytes=0-8388607' }, subres: null, query: null,
    ak: 'LTAI5tEXAMPLE', sk: 'secretEXAMPLEkey/+=', token: '',
  },
  {
    name: 'get-sts-ifmatch-special-key',
    region: 'oss-cn-hangzhou', bucket: 'bucket-1', key: "dir with space/ä+x=y!(1)*'~",
    headers: { range: 'bytes=8388608-16777215', 'if-match': '"9B2CF535F27731C974343645A3985328"' },
    subres: null, query: null,
    ak: 'STS.NUexample', sk: 'stsSecret', token: 'CAIS+token/value==',
  },
  {
    name: 'list-v2-continuation',
    region: 'oss-cn-beijing', bucket: 'conf-ai', key: '',
    headers: {}, subres: { 'continuation-token': 'ChJxd2VuL0FiQy1kRWZfZ2g-' },
    query: { 'list-type': '2', prefix: 'qwen2.5-3b-gocryptfs/', 'max-keys': '1000' },
    ak: 'LTAI5tEXAMPLE', sk: 'secretEXAMPLEkey/+=', token: '',
  },
  {
    name: 'list-v2-first-page-sts',
    region: 'oss-cn-shanghai', bucket: 'bkt', key: '',
    headers: {}, subres: null,
    query: { 'list-type': '2', prefix: '', 'max-keys': '1000' },
    ak: 'STS.id', sk: 's', token: 'tok',
  },
];

const vectors = [];
for (const c of cases) {
  for (const v4 of [false, true]) {
    const client = new OSS({
      region: c.region,
      accessKeyId: c.ak,
      accessKeySecret: c.sk,
      stsToken: c.token || undefined,
      bucket: c.bucket,
      authorizationV4: v4,
    });
    const params = {
      method: 'GET',
      bucket: c.bucket,
      object: c.key || undefined,
      headers: Object.assign({}, c.headers),
      subres: c.subres ? Object.assign({}, c.subres) : undefined,
      query: c.query ? Object.assign({}, c.query) : undefined,
    };
    const req = createRequest.call(client, params);
    const signed = {};
    for (const [k, val] of Object.entries(req.params.headers)) {
      if (k.toLowerCase() !== 'user-agent') {
        signed[k.toLowerCase()] = String(val);
      }
    }
    const query = [];
    for (const [k, val] of Object.entries(c.query || {})) query.push([k, val]);
    for (const [k, val] of Object.entries(c.subres || {})) query.push([k, val]);
    vectors.push({
      name: `${v4 ? 'v4' : 'v1'}-${c.name}`,
      version: v4 ? 4 : 1,
      region: c.region,
      bucket: c.bucket,
      key: c.key,
      query,
      headers: c.headers,
      access_key_id: c.ak,
      secret_access_key: c.sk,
      session_token: c.token,
      time: FROZEN_MS / 1000,
      url: req.url,
      signed_headers: signed,
    });
  }
}
process.stdout.write(`${JSON.stringify({ generator: `ali-oss ${version}`, vectors }, null, 2)}\n`);
