#!/usr/bin/env python3
"""Builds the secret-scanning benchmark's corpus: a git repository of
COMMITS commits (default 5,000) holding about SIZE_MB (default 220) of
text across its history, with planted secrets of every `latchkey scan`
detector and decoys that look like secrets but are not.

    bench/scan_corpus.py DIR [--commits N] [--size-mb M] [--seed S]

Writes DIR/repo (through `git fast-import`, so thousands of commits take
seconds) and DIR/manifest.json:

  planted:  [{kind, variant, path, line, lines, where: "tree"}]: each
            secret in the final tree, on `line` (the value's), within the
            block `lines` (a hit on any of them finds it).
  history:  [{kind, variant, path, line, lines, where: "history"}]: the
            same, in a file added in one commit and deleted later.
  decoys:   [{kind, path, line}] in the final tree: placeholders, hashes,
            UUIDs, base64 images, npm integrity strings, code.

Deterministic for a seed. Nothing here is a real credential.
"""

import argparse
import base64
import hashlib
import json
import os
import random
import string
import subprocess
import sys

B32 = string.ascii_uppercase + "234567"
B64 = string.ascii_letters + string.digits + "+/"
ALNUM = string.ascii_letters + string.digits


def rand(rng, alphabet, n):
    return "".join(rng.choice(alphabet) for _ in range(n))


def password(rng):
    # Mixed classes, 14-20 characters: what a generator makes.
    core = rand(rng, ALNUM, rng.randint(12, 17))
    return core[:4] + rng.choice("-_!@#%") + core[4:] + rng.choice(string.digits)


def key_pair(rng):
    return "AKIA" + rand(rng, B32, 16), rand(rng, B64, 40)


def session_token(rng):
    # Latchkey's shape: base64url of version 1, a small key id, a nonce
    # and the sealed claims.
    return "AQAAAAE" + rand(rng, ALNUM + "-_", 300)


def planted_secret(rng, kind, n):
    """(variant, lines, index of the line holding the secret, the secret
    value); `n` picks the variant in turn."""
    if kind == "aws-access-key":
        k, s = key_pair(rng)
        return "env", [f"AWS_ACCESS_KEY_ID={k}", f"AWS_SECRET_ACCESS_KEY={s}"], 1, s
    if kind == "aws-session":
        k, s = key_pair(rng)
        k = "ASIA" + k[4:]
        t = session_token(rng)
        if n % 2:
            # A table of a script's output: no names at all.
            return "bare", [f"{k}\t{s}\t{t}"], 0, s
        return "json", ['{"Credentials": {', f'  "AccessKeyId": "{k}",', f'  "SecretAccessKey": "{s}",',
                        f'  "SessionToken": "{t}"', "}}"], 2, s
    if kind == "credentials-file":
        k, s = key_pair(rng)
        return "ini", ["[default]", f"aws_access_key_id = {k}", f"aws_secret_access_key = {s}"], 2, s
    if kind == "aws-secret-key":
        s = rand(rng, B64, 40)
        return "yaml", [f'aws_secret_access_key: "{s}"'], 0, s
    if kind == "session-token":
        t = session_token(rng)
        return "env", [f"AWS_SESSION_TOKEN={t}"], 0, t
    if kind == "database-url":
        p = password(rng)
        return [
            ("postgres", [f"DATABASE_URL=postgres://app:{p}@db.internal:5432/orders"], 0, p),
            ("mysql", [f'url = "mysql://root:{p}@127.0.0.1:3306/shop"'], 0, p),
            ("go-dsn", [f'dsn := "app:{p}@tcp(db:3306)/shop?parseTime=true"'], 0, p),
        ][n % 3]
    if kind == "jdbc-url":
        p = password(rng).replace(";", "")
        return [
            ("mysql", [f"spring.datasource.url=jdbc:mysql://db:3306/shop?user=app&password={p}"], 0, p),
            ("sqlserver", [f"url=jdbc:sqlserver://db:1433;databaseName=shop;user=sa;password={p};"], 0, p),
            ("oracle", [f"url=jdbc:oracle:thin:scott/{p.replace('@', '')}@db:1521/ORCL"], 0, p),
        ][n % 3]
    if kind == "libpq-dsn":
        p = rand(rng, ALNUM, 16)
        return "python", [f'conn = psycopg.connect("host=db dbname=orders user=app password={p}")'], 0, p
    if kind == "env-password":
        p = password(rng)
        return [
            ("pgpassword", [f"PGPASSWORD='{p}' psql -h db -U app orders"], 0, p),
            ("mysql-pwd", [f"export MYSQL_PWD='{p}'"], 0, p),
            ("yaml", ["environment:", f'  PGPASSWORD: "{p}"'], 1, p),
            ("kubernetes", ["env:", "  - name: PGPASSWORD", f'    value: "{p}"'], 2, p),
        ][n % 4]
    if kind == "private-key":
        body = base64.b64encode(rng.randbytes(600)).decode()
        lines = [body[i:i + 64] for i in range(0, len(body), 64)]
        return "rsa", ["-----BEGIN RSA PRIVATE KEY-----", *lines, "-----END RSA PRIVATE KEY-----"], 0, body[:32]
    if kind == "private-key-encrypted":
        body = base64.b64encode(rng.randbytes(600)).decode()
        lines = [body[i:i + 64] for i in range(0, len(body), 64)]
        return "pkcs8", ["-----BEGIN ENCRYPTED PRIVATE KEY-----", *lines,
                         "-----END ENCRYPTED PRIVATE KEY-----"], 0, body[:32]
    if kind == "rds-auth-token":
        k, _ = key_pair(rng)
        sig = rand(rng, "0123456789abcdef", 64)
        t = (f"db.internal:5432/?Action=connect&DBUser=app&X-Amz-Algorithm=AWS4-HMAC-SHA256"
             f"&X-Amz-Credential={k}%2F20261204%2Fus-east-1%2Frds-db%2Faws4_request"
             f"&X-Amz-Date=20261204T000000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Signature={sig}")
        return "quoted", [f"token = '{t}'"], 0, t
    if kind == "generic-secret":
        name = rng.choice(["api_key", "client_secret", "auth_token", "db_password", "stripe_api_key"])
        if n % 3 == 2:
            # What people pick: a word, a year and a sign (weaker, and
            # plainer: the entropy threshold's hard case).
            word = rng.choice(["Summer", "Winter", "Falcon", "Orange", "Dragon", "Monkey"])
            v = f"{word}{rng.randint(1990, 2030)}{rng.choice('!#$%&*')}"
            return "human", [f'{name} = "{v}"'], 0, v
        v = rand(rng, ALNUM, rng.randint(12, 32))
        return "random", [f'{name} = "{v}"'], 0, v
    raise ValueError(kind)


KINDS = ["aws-access-key", "aws-session", "credentials-file", "aws-secret-key", "session-token",
         "database-url", "jdbc-url", "libpq-dsn", "env-password", "private-key", "private-key-encrypted",
         "rds-auth-token", "generic-secret"]


def decoy(rng):
    """(kind, line): text that is not a secret."""
    kind = rng.choice(["example-key", "template", "placeholder", "sha256", "uuid", "image", "integrity",
                       "code", "commit", "password-hash", "named-digest", "secret-name", "plain-value"])
    if kind == "password-hash":
        salt = rand(rng, ALNUM + "./", 22)
        return kind, rng.choice([f'password = "$2b$12${salt}{rand(rng, ALNUM + "./", 31)}"',
                                 f"admin_password: $argon2id$v=19$m=65536,t=3,p=4${salt}",
                                 f'password_hash = "{rand(rng, ALNUM, 24)}"'])
    if kind == "named-digest":
        return kind, rng.choice([f'token_sha256 = "{hashlib.sha256(rng.randbytes(8)).hexdigest()}"',
                                 f"secret_digest: {hashlib.sha1(rng.randbytes(8)).hexdigest()}"])
    if kind == "secret-name":
        return kind, rng.choice([f'secret_name = "prod/db/{rand(rng, ALNUM, 12)}"',
                                 f'"SecretId": "prod-app-{rand(rng, ALNUM, 10)}"',
                                 f"DB_PASSWORD_FILE=/run/secrets/{rand(rng, ALNUM, 12)}",
                                 f'token_url = "https://{rand(rng, ALNUM, 10).lower()}.auth.internal/token"'])
    if kind == "plain-value":
        # Assigned to a secret-sounding name, not secret, and not code:
        # what a lower entropy threshold starts to report.
        return kind, rng.choice(['token_expires = "2024-01-01T00:00:00Z"', 'secret_key_base = "development"',
                                 'password_min_length = "12"', 'token = "v1.2.3-beta.4"',
                                 'api_key_header = "X-Api-Key"', 'password_prompt = "Password: "'])
    if kind == "example-key":
        return kind, rng.choice(["aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
                                 "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"])
    if kind == "template":
        return kind, rng.choice(["password = ${DB_PASSWORD}", "DATABASE_URL=postgres://app:${PGPASS}@db/orders",
                                 "api_key: {{ vault_api_key }}", "PGPASSWORD=$PGPASS psql"])
    if kind == "placeholder":
        return kind, rng.choice(['password: "<password>"', "secret = 'changeme'", 'token = "xxxxxxxxxxxxxxxx"',
                                 "api_key = 'your_api_key_here'"])
    if kind == "sha256":
        return kind, f"sha256 = {hashlib.sha256(rng.randbytes(16)).hexdigest()}"
    if kind == "uuid":
        h = rng.randbytes(16).hex()
        return kind, f'id = "{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"'
    if kind == "image":
        return kind, f'"icon": "data:image/png;base64,{base64.b64encode(rng.randbytes(120)).decode()}"'
    if kind == "integrity":
        return kind, f'"integrity": "sha512-{base64.b64encode(rng.randbytes(64)).decode()}"'
    if kind == "code":
        return kind, rng.choice(["password = config.database.password", "token = next_token(stream)",
                                 "secret = os.environ.get('SECRET')", "let key = api_key.trim();"])
    return kind, f"merge {rng.randbytes(20).hex()} into main"


WORDS = ("the order total is computed from items and the customer record is loaded before the "
         "payment step runs and a receipt is sent when the transaction commits").split()


def filler(rng, n):
    out = []
    for _ in range(n):
        style = rng.random()
        if style < 0.4:
            out.append("    " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14))))
        elif style < 0.7:
            v = rng.choice(WORDS)
            out.append(f"    {v}_{rng.randint(0, 999)} = compute_{rng.choice(WORDS)}({v}, {rng.randint(0, 99)})")
        elif style < 0.85:
            out.append(f"# {' '.join(rng.choice(WORDS) for _ in range(8))}")
        else:
            out.append(f"def {rng.choice(WORDS)}_{rng.randint(0, 9999)}(self, {rng.choice(WORDS)}):")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--commits", type=int, default=5000)
    ap.add_argument("--size-mb", type=int, default=220)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    repo = os.path.join(args.dir, "repo")
    os.makedirs(repo, exist_ok=True)
    subprocess.run(["git", "init", "-q", "-b", "main", repo], check=True)

    # Per commit: new versions of a few files, so history holds size_mb.
    files_per_commit = 4
    file_lines = max(20, args.size_mb * 1024 * 1024 // (args.commits * files_per_commit) // 70)
    tree = {}           # path -> list of lines (the current version)
    planted, history_planted, decoys = [], [], []
    stream = []

    def blob_cmd(path, text):
        data = text.encode()
        stream.append(f"M 100644 inline {path}\ndata {len(data)}\n".encode() + data + b"\n")

    plant_every = max(1, args.commits // 400)
    turns = {}
    for c in range(args.commits):
        commands = []
        stream_start = len(stream)
        for _ in range(files_per_commit):
            path = f"src/{rng.choice(['app', 'lib', 'svc', 'web'])}/mod{rng.randint(0, 599)}.py"
            lines = filler(rng, file_lines)
            # Decoys in some files.
            for _ in range(rng.randint(0, 3)):
                lines.insert(rng.randrange(len(lines)), decoy(rng)[1])
            tree[path] = lines
            blob_cmd(path, "\n".join(lines) + "\n")
        if c % plant_every == 0:
            turn = c // plant_every
            kind = KINDS[turn % len(KINDS)]
            in_history = turn % 4 == 3 and c < args.commits - 10
            # Each kind's variants in turn, in the tree and in history alike.
            n = turns.get((kind, in_history), 0)
            turns[(kind, in_history)] = n + 1
            variant, secret_lines, at, value = planted_secret(rng, kind, n)
            if in_history:
                # Only in history: a file added here and deleted later.
                path = f"history/leak{c}.env"
                blob_cmd(path, "\n".join(secret_lines) + "\n")
                history_planted.append({"kind": kind, "variant": variant, "path": path, "where": "history",
                                        "line": at + 1, "lines": list(range(1, len(secret_lines) + 1)),
                                        "delete_at": c + rng.randint(1, 9)})
            else:
                path = f"config/{kind}-{c}.conf"
                head = filler(rng, 5)
                lines = head + secret_lines + filler(rng, 5)
                tree[path] = lines
                blob_cmd(path, "\n".join(lines) + "\n")
                first = len(head) + 1
                planted.append({"kind": kind, "variant": variant, "path": path, "where": "tree",
                                "line": first + at, "lines": list(range(first, first + len(secret_lines)))})
        for h in history_planted:
            if h.get("delete_at") == c:
                stream.append(f"D {h['path']}\n".encode())
        body = b"".join(stream[stream_start:])
        del stream[stream_start:]
        when = 1_700_000_000 + c * 600
        header = (f"commit refs/heads/main\nmark :{c + 1}\n"
                  f"author Bench <bench@example.com> {when} +0000\n"
                  f"committer Bench <bench@example.com> {when} +0000\n"
                  f"data {len(f'commit {c}')}\ncommit {c}\n").encode()
        if c > 0:
            header += f"from :{c}\n".encode()
        stream.append(header + body + b"\n")
    for h in history_planted:
        h.pop("delete_at", None)
    data = b"".join(stream)
    subprocess.run(["git", "-C", repo, "fast-import", "--quiet"], input=data, check=True)
    subprocess.run(["git", "-C", repo, "checkout", "-q", "-f", "main"], check=True)

    # What the final tree holds, line by line.
    for path, lines in tree.items():
        with open(os.path.join(repo, path)) as f:
            real = f.read().split("\n")
        assert real[: len(lines)] == lines, path
    for path, lines in tree.items():
        if not path.startswith("config/"):
            for i, line in enumerate(lines):
                if not line.startswith(("    ", "#", "def ")):
                    decoys.append({"path": path, "line": i + 1, "text": line[:40]})
    secrets = planted
    size = subprocess.run(["git", "-C", repo, "count-objects", "-vH"], capture_output=True, text=True).stdout
    manifest = {"planted": secrets, "history": history_planted, "decoys": decoys,
                "commits": args.commits, "objects": size}
    with open(os.path.join(args.dir, "manifest.json"), "w") as f:
        json.dump(manifest, f)
    print(f"{args.commits} commits, {len(secrets)} secrets in the tree, {len(history_planted)} in history only, "
          f"{len(decoys)} decoy lines", file=sys.stderr)


if __name__ == "__main__":
    main()
