#!/usr/bin/env python3
"""botocore as an independent oracle for Latchkey's database auth tokens.

  generate --seed S --count N
      Random inputs (hosts, ports, UTF-8 user names, regions, with and
      without session tokens, RDS and DSQL) signed by botocore at random
      instants. One JSON object per line.

  regenerate
      Reads JSON lines {token, secret_access_key, session_token?, region,
      hostname, port?, username?, action} and, for each, signs the same
      request with botocore at the token's own X-Amz-Date. Prints one JSON
      line {"match": bool, "botocore": token}.

The clock is frozen by replacing botocore.auth.get_current_datetime, the one
place botocore's SigV4 signers read the time.
"""

import argparse
import datetime
import json
import random
import string
import sys
import urllib.parse

import botocore.auth
import botocore.credentials
import botocore.session

REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2", "us-gov-west-1", "cn-north-1", "local"]
USER_ALPHABET = string.ascii_letters + string.digits + " _-.@+/=&%?#:;,'\"~!$*()[]" + "éüßøæ日本語Ω🙂"
TOKEN_ALPHABET = string.ascii_letters + string.digits + "+/="


def freeze(when):
    botocore.auth.get_current_datetime = lambda remove_tzinfo=True: when


class Signers:
    """One botocore client per service; credentials swapped per case (creating
    a client costs tens of milliseconds)."""

    def __init__(self):
        session = botocore.session.get_session()
        kwargs = dict(region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
        self.rds = session.create_client("rds", **kwargs)
        self.dsql = session.create_client("dsql", **kwargs)

    def sign(self, case):
        creds = botocore.credentials.Credentials(
            case["access_key_id"], case["secret_access_key"], case.get("session_token")
        )
        action = case["action"]
        client = self.rds if action == "connect" else self.dsql
        client._request_signer._credentials = creds
        if action == "connect":
            return client.generate_db_auth_token(
                DBHostname=case["hostname"],
                Port=case["port"],
                DBUsername=case["username"],
                Region=case["region"],
            )
        method = (
            client.generate_db_connect_admin_auth_token
            if action == "DbConnectAdmin"
            else client.generate_db_connect_auth_token
        )
        return method(Hostname=case["hostname"], Region=case["region"], ExpiresIn=case.get("expires_in", 900))


def random_host(rng):
    labels = []
    for _ in range(rng.randint(1, 5)):
        first = rng.choice(string.ascii_letters)
        rest = "".join(rng.choice(string.ascii_letters + string.digits + "-") for _ in range(rng.randint(0, 20)))
        labels.append(first + rest.rstrip("-"))
    return ".".join(labels)


def random_case(rng):
    action = rng.choices(["connect", "DbConnect", "DbConnectAdmin"], weights=[8, 1, 1])[0]
    case = {
        "action": action,
        "hostname": random_host(rng),
        "region": rng.choice(REGIONS) if rng.random() < 0.8 else "xx-" + "".join(rng.choice(string.ascii_lowercase) for _ in range(6)) + "-1",
        "access_key_id": rng.choice(["AKIA", "ASIA", "LKIA"]) + "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(16)),
        "secret_access_key": "".join(rng.choice(TOKEN_ALPHABET) for _ in range(40)),
        "unix": rng.randint(946684800, 4102444800),
    }
    if rng.random() < 0.5:
        case["session_token"] = "".join(rng.choice(TOKEN_ALPHABET) for _ in range(rng.randint(16, 1300)))
    if action == "connect":
        case["port"] = rng.choice([443, 3306, 5432, 1, 65535, rng.randint(1, 65535)])
        case["username"] = "".join(rng.choice(USER_ALPHABET) for _ in range(rng.randint(1, 40)))
    return case


def generate(args):
    rng = random.Random(args.seed)
    signers = Signers()
    for _ in range(args.count):
        case = random_case(rng)
        freeze(datetime.datetime.fromtimestamp(case["unix"], datetime.timezone.utc).replace(tzinfo=None))
        case["token"] = signers.sign(case)
        print(json.dumps(case, ensure_ascii=False))


def regenerate(_args):
    signers = Signers()
    for line in sys.stdin:
        if not line.strip():
            continue
        case = json.loads(line)
        query = case["token"].split("?", 1)[1]
        stamp = urllib.parse.parse_qs(query)["X-Amz-Date"][0]
        freeze(datetime.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ"))
        theirs = signers.sign(case)
        print(json.dumps({"match": theirs == case["token"], "botocore": theirs}, ensure_ascii=False))
        sys.stdout.flush()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate")
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("--count", type=int, default=1000)
    g.set_defaults(func=generate)
    r = sub.add_parser("regenerate")
    r.set_defaults(func=regenerate)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
