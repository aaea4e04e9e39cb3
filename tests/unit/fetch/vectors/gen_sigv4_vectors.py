#!/usr/bin/python3
"""Generates sigv4_vectors.json with Debian's python3-botocore (the AWS SDK's own signer).

Run once with /usr/bin/python3 and commit the output; fetch_test checks that our SigV4 signer
reproduces every Authorization header byte for byte. Time is frozen and the keys are made up.
"""
import datetime
import json
import sys
from unittest import mock
from urllib.parse import quote

import botocore
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

FROZEN = datetime.datetime(2026, 11, 21, 5, 8, 13)
EPOCH = int(FROZEN.replace(tzinfo=datetime.timezone.utc).timestamp())

CASES = [
    dict(name="get-virtual-hosted-range", scheme="https",
         host="models.s3.us-east-1.amazonaws.com", path="/qwen/AbC-dEf_gh",
         query=[], headers={"range": "bytes=0-8388607"}, region="us-east-1",
         ak="AKIDEXAMPLE", sk="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token=""),
    dict(name="get-path-style-port-token-ifmatch", scheme="http", host="127.0.0.1:4568",
         path="/bucket/dir with space/ä+x=y!(1)*'", query=[],
         headers={"range": "bytes=8388608-16777215",
                  "if-match": "\"9b2cf535f27731c974343645a3985328\""},
         region="cn-beijing", ak="S3RVER", sk="S3RVER",
         token="FQoGZXIvYXdzEAMaDSTStoken/+=="),
    dict(name="list-objects-v2-continuation", scheme="https",
         host="s3.oss-cn-beijing-internal.aliyuncs.com", path="/conf-ai",
         query=[["list-type", "2"], ["prefix", "qwen2.5-3b-gocryptfs/"],
                ["max-keys", "1000"], ["continuation-token", "1/abc+def=="]],
         headers={}, region="cn-beijing", ak="LTAI5tEXAMPLE", sk="secret key with spaces",
         token=""),
    dict(name="get-unsigned-payload", scheme="https", host="b.s3.eu-west-1.amazonaws.com",
         path="/k", query=[], headers={"range": "bytes=1-2"}, region="eu-west-1",
         ak="AKID2", sk="sk2", token="tok2", unsigned=True),
]


def main():
    out = []
    for case in CASES:
        url = case["scheme"] + "://" + case["host"] + quote(case["path"], safe="/-_.~")
        if case["query"]:
            url += "?" + "&".join(quote(k, safe="-_.~") + "=" + quote(v, safe="-_.~")
                                  for k, v in case["query"])
        request = AWSRequest(method="GET", url=url, headers=dict(case["headers"]))
        if case.get("unsigned"):
            request.context["client_config"] = Config(s3={"payload_signing_enabled": False})
        creds = Credentials(case["ak"], case["sk"], case["token"] or None)
        with mock.patch("botocore.auth.datetime") as dt:
            dt.datetime.utcnow.return_value = FROZEN
            dt.datetime.strptime = datetime.datetime.strptime
            S3SigV4Auth(creds, "s3", case["region"]).add_auth(request)
        signed = {k.lower(): v for k, v in request.headers.items()}
        out.append(dict(
            name=case["name"], scheme=case["scheme"], host=case["host"], path=case["path"],
            query=case["query"], headers=case["headers"], region=case["region"],
            access_key_id=case["ak"], secret_access_key=case["sk"], session_token=case["token"],
            payload_hash=signed["x-amz-content-sha256"], time=EPOCH, signed_headers=signed))
    json.dump({"generator": "botocore " + botocore.__version__, "vectors": out}, sys.stdout,
              indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
