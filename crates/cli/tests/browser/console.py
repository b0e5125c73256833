"""The web console in Debian's Chromium, driven by chromedriver through
Selenium, against a real `latchkey serve` the Rust test set up.

Usage: console.py CONFIG.json. CONFIG names the endpoint, the server's CA,
the users the Rust test made (passwords, MFA seeds), the role to switch to,
axe-core's script and, optionally, a directory for screenshots. Prints one
JSON object of what it saw; an assertion that fails exits non-zero with
the reason.
"""
import base64
import hashlib
import hmac
import http.cookiejar
import json
import ssl
import struct
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

CONFIG = json.load(open(sys.argv[1]))
BASE = CONFIG["endpoint"]
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
INCORRECT = "Your authentication information is incorrect. Please try again."
SEEN = {"pages": [], "axe": {}}
VISITED = []


def totp(seed_file, offset=0):
    return totp_of(open(seed_file).read(), offset)


def totp_of(seed_text, offset=0):
    s = seed_text.strip()
    seed = base64.b32decode(s + "=" * (-len(s) % 8))
    c = (int(time.time()) + offset) // 30
    h = hmac.new(seed, struct.pack(">Q", c), hashlib.sha1).digest()
    o = h[19] & 15
    return "%06d" % ((struct.unpack(">I", h[o:o + 4])[0] & 0x7FFFFFFF) % 1000000)


def browser():
    o = webdriver.ChromeOptions()
    o.binary_location = "/usr/bin/chromium"
    for a in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
              "--window-size=1280,1000", "--lang=en-US"]:
        o.add_argument(a)
    # The server's certificate is signed by the CA `latchkey serve` made;
    # Chromium is told to accept it (the cookies stay `Secure`).
    o.accept_insecure_certs = True
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)
    # A form's answer may still be loading when the next step looks for it.
    d.implicitly_wait(5)
    return d


AXE = open(CONFIG["axe"]).read()


def check_page(d, name):
    """axe-core on the page: no serious or critical violation; a
    screenshot when asked."""
    VISITED.append(d.current_url)
    d.execute_script(AXE)
    violations = d.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations.map("
        "v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(' '))}))))")
    bad = [v for v in violations if v["impact"] in ("serious", "critical")]
    assert not bad, f"{name}: accessibility violations {bad}"
    SEEN["axe"][name] = [v["id"] for v in violations]
    SEEN["pages"].append(name)
    if CONFIG.get("screenshots"):
        d.save_screenshot(f"{CONFIG['screenshots']}/{name}.png")


def go(d, path):
    d.get(BASE + path)


def text(d, css):
    return d.find_element(By.CSS_SELECTOR, css).text


def fill(d, field, value):
    try:
        e = d.find_element(By.ID, field)
    except Exception:
        raise AssertionError(f"no #{field} on {d.current_url}: {d.page_source[:3000]}")
    e.clear()
    e.send_keys(value)


def settled(d):
    WebDriverWait(d, 15).until(lambda d: d.execute_script("return document.readyState") == "complete")


def click(d, css):
    """Clicks what `css` selects, which loads a new page, and waits for
    it. A page still settling when the element was found is tried again."""
    for attempt in range(3):
        settled(d)
        try:
            old = d.find_element(By.TAG_NAME, "html")
            d.find_element(By.CSS_SELECTOR, css).click()
            break
        except (StaleElementReferenceException, WebDriverException):
            if attempt == 2:
                raise
            time.sleep(0.5)
    WebDriverWait(d, 15).until(lambda d: gone(old))
    settled(d)


def gone(element):
    """Whether the page that held `element` was replaced. (Chromium says so
    with a stale reference, or with "does not belong to the document".)"""
    try:
        element.is_enabled()
        return False
    except (StaleElementReferenceException, WebDriverException):
        return True


def submit(d, form_id):
    click(d, f"#{form_id} button[type=submit]:last-of-type")


def sign_in(d, user, password):
    go(d, "/console/signin")
    fill(d, "username", user)
    fill(d, "password", password)
    submit(d, "signin")


def sign_out(d):
    click(d, "#sign-out")
    assert d.current_url.endswith("/console/signin"), d.current_url


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def http(path, cookie=None, data=None, headers=None):
    """A request outside the browser (headers, CSRF): status, headers, body;
    redirects are answers, not followed."""
    ctx = ssl.create_default_context(cafile=CONFIG["ca"])
    opener = urllib.request.build_opener(NoRedirect, urllib.request.HTTPSHandler(context=ctx))
    req = urllib.request.Request(BASE + path if path.startswith("/") else path, data=data,
                                 headers=headers or {})
    if cookie:
        req.add_header("Cookie", cookie)
    try:
        with opener.open(req) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def sign_in_from(source, user, password):
    """A sign-in posted from the loopback address `source` (127.0.0.2...),
    as a browser would: the sign-in page for its double-submit cookie, then
    the form, same-origin. The page answered."""
    import http.client
    port = urllib.parse.urlparse(BASE).port
    origin = f"https://127.0.0.1:{port}"

    def request(method, path, body=None, headers=None):
        ctx = ssl.create_default_context(cafile=CONFIG["ca"])
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, source_address=(source, 0))
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        answer = (r.status, r.getheader("Set-Cookie") or "", r.read().decode())
        conn.close()
        return answer

    _, cookie, _ = request("GET", "/console/signin")
    pair = cookie.split(";")[0]
    token = pair.split("=", 1)[1]
    body = urllib.parse.urlencode({"csrf": token, "username": user, "password": password})
    status, set_cookie, page = request("POST", "/console/signin", body, {
        "Cookie": pair, "Origin": origin, "Sec-Fetch-Site": "same-origin",
        "Content-Type": "application/x-www-form-urlencoded"})
    return status, set_cookie, page


def admin(args):
    """The stock AWS CLI as the server's administrator: its JSON output."""
    import os
    import subprocess
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(CONFIG["aws_env"])
    out = subprocess.run(["aws", *args], env=env, check=True, capture_output=True).stdout
    return json.loads(out) if out.strip() else None


def aws_env(extra):
    import os
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(extra)
    return env


def carol_psql():
    """A psql session of carol's through the gateway, with a token from
    the stock AWS CLI; it has run two statements and waits for more."""
    import os
    import subprocess
    env = aws_env(CONFIG["carol_env"])
    env.update({"AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"})
    token = subprocess.run(
        ["aws", "rds", "generate-db-auth-token", "--hostname", "localhost",
         "--port", str(CONFIG["psql"]["port"]), "--username", "app", "--region", "us-east-1"],
        env=env, check=True, capture_output=True, text=True).stdout.strip()
    env = dict(os.environ, PGPASSWORD=token, PGCONNECT_TIMEOUT="10")
    p = subprocess.Popen(["psql", CONFIG["psql"]["conninfo"], "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=env)
    p.stdin.write("SELECT 'seen' AS marker_console;\nSELECT 2;\n")
    p.stdin.flush()
    return p


def live_session(d, statements):
    """The id of carol's running session once the Sessions page shows it
    with `statements` statements."""
    deadline = time.time() + 20
    while True:
        go(d, "/console/sessions")
        for row in d.find_elements(By.CSS_SELECTOR, "tr[data-session]"):
            cells = row.find_elements(By.TAG_NAME, "td")
            if "user/carol" in cells[0].text and cells[3].text == "app" and cells[5].text == str(statements):
                return row.get_attribute("data-session")
        assert time.time() < deadline, d.page_source
        time.sleep(0.5)


def ended_psql(p):
    """Sends psql one more statement; what psql said as it ended."""
    p.stdin.write("SELECT 3;\n")
    try:
        p.stdin.close()
    except BrokenPipeError:
        pass
    p.wait(timeout=20)
    err = p.stderr.read()
    assert p.returncode != 0, (p.returncode, err)
    return err


def session_cookie(d):
    c = d.get_cookie("__Host-latchkey-session")
    assert c and c["secure"] and c["httpOnly"] and c["sameSite"] == "Strict", c
    return f"__Host-latchkey-session={c['value']}"


def main():
    users = CONFIG["users"]
    d = browser()
    try:
        # --- sign-in: the page, a wrong password, MFA (wrong, then right) ---
        go(d, "/console")
        assert d.current_url.endswith("/console/signin"), d.current_url
        check_page(d, "signin")
        sign_in(d, "alice", "not-her-password")
        assert INCORRECT in text(d, ".error"), d.page_source
        sign_in(d, "no-such-user", "whatever-Passw0rd!")
        assert INCORRECT in text(d, ".error")
        sign_in(d, "alice", users["alice"]["password"])
        assert d.find_element(By.ID, "mfa"), "MFA step expected"
        check_page(d, "mfa")
        fill(d, "code", "000000" if totp(users["alice"]["seed"], 30) != "000000" else "111111")
        submit(d, "mfa")
        assert "MFA code is incorrect" in text(d, ".error")
        fill(d, "code", totp(users["alice"]["seed"], 30))
        signed_in_at = time.time()
        alice_step = (int(signed_in_at) + 30) // 30
        submit(d, "mfa")
        assert d.current_url.endswith("/console"), d.current_url
        assert "alice" in text(d, "#signed-in")
        check_page(d, "overview")
        alice_cookie = session_cookie(d)

        # --- identities: create a user with tags, attach a policy ---
        go(d, "/console/users")
        check_page(d, "users")
        go(d, "/console/users/new")
        check_page(d, "user-new")
        fill(d, "name", "made-in-console")
        fill(d, "tags", "team=data\nenv=test")
        submit(d, "create-user")
        assert d.current_url.split("?")[0].endswith("/console/users/made-in-console"), d.current_url
        assert "The user was created." in d.page_source
        fill(d, "policy-arn", CONFIG["policy_arn"])
        submit(d, "attach-policy")
        assert "The policy was attached." in d.page_source, d.page_source
        assert CONFIG["policy_arn"] in d.page_source
        check_page(d, "user")

        # --- groups: create one, add the user, attach a policy; a role's page ---
        go(d, "/console/groups")
        fill(d, "group-name", "readers")
        submit(d, "create-group")
        assert d.current_url.split("?")[0].endswith("/console/groups/readers"), d.current_url
        assert "The group was created." in d.page_source
        fill(d, "member", "made-in-console")
        submit(d, "add-member")
        assert "The user was added to the group." in d.page_source, d.page_source
        fill(d, "policy-arn", CONFIG["policy_arn"])
        submit(d, "attach-policy")
        assert "The policy was attached." in d.page_source, d.page_source
        fill(d, "member", "no-such-user")
        submit(d, "add-member")
        assert "NoSuchEntity" in text(d, ".error"), d.page_source
        check_page(d, "group")
        go(d, "/console/groups")
        check_page(d, "groups")
        go(d, "/console/roles")
        check_page(d, "roles")
        click(d, "a[href='/console/roles/elevated']")
        assert "aws:MultiFactorAuthPresent" in text(d, "#trust-policy"), d.page_source
        check_page(d, "role")

        # --- create a role: a bad trust policy refused, then tags; a tag removed ---
        go(d, "/console/roles")
        click(d, "a[href='/console/roles/new']")
        check_page(d, "role-new")
        trust = d.find_element(By.ID, "trust").get_attribute("value")
        assert "aws:MultiFactorAuthPresent" in trust, trust
        fill(d, "name", "made-role")
        fill(d, "trust", "{not json")
        submit(d, "create-role")
        assert "MalformedPolicyDocument" in text(d, ".error"), d.page_source
        fill(d, "trust", trust)
        fill(d, "tags", "team=ops\nenv=test")
        submit(d, "create-role")
        assert d.current_url.split("?")[0].endswith("/console/roles/made-role"), d.current_url
        assert "The role was created." in d.page_source
        assert "aws:MultiFactorAuthPresent" in text(d, "#trust-policy"), d.page_source
        click(d, "button[aria-label='Remove the tag env']")
        assert "The tag was removed." in d.page_source, d.page_source
        tags = admin(["iam", "list-role-tags", "--role-name", "made-role"])["Tags"]
        assert tags == [{"Key": "team", "Value": "ops"}], tags

        # --- an access key deactivated, then deleted ---
        made_key = admin(["iam", "create-access-key", "--user-name", "made-in-console"])["AccessKey"]["AccessKeyId"]
        go(d, "/console/users/made-in-console")
        click(d, f"button[aria-label='Deactivate {made_key}']")
        assert "The access key was deactivated" in d.page_source, d.page_source
        keys = admin(["iam", "list-access-keys", "--user-name", "made-in-console"])["AccessKeyMetadata"]
        assert [k["Status"] for k in keys] == ["Inactive"], keys
        check_page(d, "user-inactive-key")
        click(d, f"button[aria-label='Delete {made_key}']")
        assert "The access key was deleted." in d.page_source, d.page_source
        assert admin(["iam", "list-access-keys", "--user-name", "made-in-console"])["AccessKeyMetadata"] == []

        # --- MFA: a virtual device assigned on the user's page, its secret
        # shown once, enabled by two consecutive codes (a wrong pair
        # first), then deactivated ---
        fill(d, "mfa-name", "made-in-console-phone")
        submit(d, "assign-mfa")
        seed = text(d, "#mfa-seed")
        assert len(seed) >= 16, d.page_source
        uri = d.find_element(By.ID, "mfa-uri").get_attribute("href")
        assert uri.startswith("otpauth://totp/Latchkey:made-in-console?secret=" + seed), uri
        check_page(d, "mfa-assign")
        fill(d, "mfa-code1", "000000")
        fill(d, "mfa-code2", "000000")
        submit(d, "enable-mfa")
        assert "not valid" in text(d, ".error"), d.page_source
        assert not d.find_elements(By.ID, "mfa-seed"), "the secret is shown once"
        fill(d, "mfa-code1", totp_of(seed, -30))
        fill(d, "mfa-code2", totp_of(seed, 0))
        submit(d, "enable-mfa")
        assert "The MFA device was enabled" in d.page_source, d.page_source
        devices = admin(["iam", "list-mfa-devices", "--user-name", "made-in-console"])["MFADevices"]
        assert [m["SerialNumber"].split(":")[-1] for m in devices] == ["mfa/made-in-console-phone"], devices
        click(d, f"button[aria-label='Deactivate {devices[0]['SerialNumber']}']")
        assert "The MFA device was deactivated." in d.page_source, d.page_source
        assert admin(["iam", "list-mfa-devices", "--user-name", "made-in-console"])["MFADevices"] == []

        # --- the policy editor: validation as you type, and without JS ---
        go(d, "/console/policies")
        check_page(d, "policies")
        go(d, "/console/policies/new")
        area = d.find_element(By.ID, "document")
        area.clear()
        area.send_keys('{"Statement":[{"Effect":"Allow","Action":"rds-db:connect"}]}')
        WebDriverWait(d, 10).until(
            lambda d: "MISSING_VERSION" in d.find_element(By.ID, "findings").text
            or "MISSING_RESOURCE" in d.find_element(By.ID, "findings").text)
        live = d.find_element(By.ID, "findings").text
        check_page(d, "policy-editor")
        click(d, "#validate")
        assert "ERROR" in text(d, "#findings"), d.page_source
        assert "$.Statement[0]" in text(d, "#findings")
        SEEN["validator"] = live
        # A finding's path selects what it names in the editor.
        area = d.find_element(By.ID, "document")
        area.clear()
        area.send_keys('{"Version":"2012-10-17","Statement":[{"Effect":"Allow",'
                       '"Action":["rds-db:connect","sql:Selekt"],"Resource":"*"}]}')
        WebDriverWait(d, 10).until(lambda d: "INVALID_ACTION" in d.find_element(By.ID, "findings").text)
        item = [li for li in d.find_elements(By.CSS_SELECTOR, "#findings li")
                if "INVALID_ACTION" in li.text][0]
        item.find_element(By.CSS_SELECTOR, "a.locate").click()
        selected = d.execute_script(
            "const a = document.getElementById('document');"
            "return [document.activeElement === a, a.value.substring(a.selectionStart, a.selectionEnd)];")
        assert selected == [True, '"sql:Selekt"'], selected

        # --- the simulator ---
        go(d, "/console/simulate")
        fill(d, "principal", CONFIG["carol_arn"])
        fill(d, "action", "rds-db:connect")
        fill(d, "resource", CONFIG["carol_db_resource"])
        submit(d, "simulator")
        assert text(d, "#decision") == "allowed", d.page_source
        allowed_page = d.page_source
        fill(d, "action", "iam:CreateUser")
        fill(d, "resource", "*")
        submit(d, "simulator")
        assert text(d, "#decision") == "implicitDeny", d.page_source
        check_page(d, "simulator")
        SEEN["simulator"] = {"allowed_mentions_policy": "carol-db" in allowed_page}

        # --- databases: register one (a mistake first), edit it, and see
        # who may connect to the one psql will use ---
        go(d, "/console/databases")
        check_page(d, "databases")
        assert "orders" in text(d, "table"), d.page_source
        go(d, "/console/databases/new")
        check_page(d, "database-new")
        fill(d, "name", "billing")
        fill(d, "endpoints", "billing.db.internal")
        fill(d, "upstream", "127.0.0.1:1")
        d.find_element(By.CSS_SELECTOR, "#tls option[value='verify-full']").click()
        fill(d, "tags", "env=prod")
        submit(d, "database-settings")
        mistake = text(d, ".error")
        assert "needs the upstream CA certificate" in mistake, d.page_source
        d.find_element(By.CSS_SELECTOR, "#tls option[value='disable']").click()
        submit(d, "database-settings")
        assert d.current_url.split("?")[0].endswith("/console/databases/billing"), d.current_url
        assert "Registered." in d.page_source
        check_page(d, "database")
        d.find_element(By.CSS_SELECTOR, "#statements option[value='audit']").click()
        submit(d, "database-settings")
        assert "Saved." in d.page_source and "audit" in text(d, "#database-facts"), d.page_source
        # Red team round B: an edit cannot move the upstream (the gateway
        # would hand the stored passwords to it), a second database cannot
        # claim another's endpoint, and tag keys differ in more than case.
        assert d.find_element(By.ID, "upstream-fixed")
        token = d.find_element(By.CSS_SELECTOR, "input[name=csrf]").get_attribute("value")
        cookie = session_cookie(d)
        same_origin = {"Content-Type": "application/x-www-form-urlencoded", "Origin": BASE}
        def post(path, fields):
            return http(path, cookie, urllib.parse.urlencode(dict(fields, csrf=token)).encode(), same_origin)
        status, _, body = post("/console/databases/billing", {
            "endpoints": "billing.db.internal", "upstream": "127.0.0.1:9", "tls": "disable",
            "auth": "password", "statements": "audit", "tags": "env=prod"})
        assert status == 400 and "cannot be changed from the console" in body, (status, body[-2000:])
        status, _, body = post("/console/databases", {
            "name": "aaa-evil", "engine": "postgres", "endpoints": "localhost", "upstream": "127.0.0.1:2",
            "auth": "password", "tls": "disable", "statements": "off"})
        assert status == 400 and "already another database" in body, (status, body[-2000:])
        status, _, body = post("/console/databases/billing", {
            "endpoints": "billing.db.internal", "statements": "audit", "tags": "env=prod\nEnv=dev"})
        assert status == 400 and "given twice" in body, (status, body[-2000:])
        # Red team round A: the console registers password databases only,
        # on a server no other registration reaches, and an edit cannot
        # lower statement policy.
        status, _, body = post("/console/databases", {
            "name": "aaa-cert", "engine": "postgres", "endpoints": "cert.internal",
            "upstream": "127.0.0.1:3", "auth": "cert", "tls": "require", "statements": "off"})
        assert status == 400 and "registered on a node" in body, (status, body[-2000:])
        status, _, body = post("/console/databases", {
            "name": "aaa-copy", "engine": "postgres", "endpoints": "copy.internal",
            "upstream": CONFIG["upstream"], "auth": "password", "tls": "disable", "statements": "off"})
        assert status == 400 and "registered already" in body, (status, body[-2000:])
        status, _, body = post("/console/databases/billing", {
            "endpoints": "billing.db.internal", "statements": "off", "tags": "env=prod"})
        assert status == 400 and "cannot be lowered" in body, (status, body[-2000:])
        go(d, "/console/databases/orders")
        rotation = text(d, "main table")
        assert "latchkey/db/orders/app" in rotation and "scheduled" in rotation, rotation
        assert "public.customers" in d.page_source and "class=pii" in d.page_source, d.page_source
        who = text(d, "#who-count + table")
        assert "carol" in who and "app" in who, who
        SEEN["database_refusal"] = mistake

        # --- secrets, parameters and keys: listed, never their values ---
        go(d, "/console/secrets")
        check_page(d, "secrets")
        click(d, "a[href^='/console/secrets/latchkey']")
        assert "AWSCURRENT" in d.page_source and "app-secret" not in d.page_source, d.page_source
        check_page(d, "secret")
        go(d, "/console/parameters")
        assert "/orders/db-host" in text(d, "main table") and "orders.db.internal" not in d.page_source, d.page_source
        check_page(d, "parameters")
        go(d, "/console/keys")
        keys = text(d, "main table")
        assert "alias/console-test" in keys and "Enabled" in keys, keys
        check_page(d, "keys")

        # --- sessions: carol's psql appears with its statements; ending it
        # ends psql's session; revoking carol ends her next one ---
        first = carol_psql()
        sid = live_session(d, 2)
        check_page(d, "sessions")
        go(d, "/console")
        by_db = text(d, "section[aria-labelledby=gateway-heading] table")
        assert "orders" in by_db, d.page_source
        logins = d.find_element(By.CSS_SELECTOR, "#logins-hour desc").get_attribute("textContent")
        assert int(logins.split(" connections")[0]) >= 2, logins
        check_page(d, "overview-live")
        SEEN["overview_logins"] = logins
        go(d, "/console/sessions")
        click(d, f"tr[data-session='{sid}'] form[action$='/end'] button")
        assert "The session was ended." in d.page_source, d.page_source
        said = ended_psql(first)
        assert "terminating connection due to administrator command" in said, said
        second = carol_psql()
        sid2 = live_session(d, 2)
        assert sid2 != sid
        click(d, f"tr[data-session='{sid2}'] form[action$='/revoke'] button")
        assert "running sessions were ended and its temporary credentials revoked" in d.page_source, d.page_source
        assert "terminating connection due to administrator command" in ended_psql(second)
        assert not d.find_elements(By.CSS_SELECTOR, "tr[data-session]"), d.page_source
        SEEN["psql_saw"] = said.strip()
        # The audit trail has the session's statements.
        carol = CONFIG["carol_arn"]
        deadline = time.time() + 30
        while True:
            go(d, "/console/audit?principal=" + urllib.parse.quote(carol) + "&database=orders")
            if "marker_console" in d.page_source or time.time() > deadline:
                break
            time.sleep(1)
        assert "marker_console" in d.page_source, d.page_source

        # --- switch role: the role's trust asks for MFA; alice gave it ---
        go(d, "/console/switch-role")
        check_page(d, "switch-role")
        fill(d, "role", "elevated")
        submit(d, "switch-role")
        assert d.current_url.endswith("/console"), d.page_source
        role = text(d, "#active-role")
        assert "elevated" in role and ("1 h 00 min" in role or "59 min" in role), role
        assert "assumed-role/elevated" in d.page_source
        click(d, "form[action='/console/switch-back'] button")
        WebDriverWait(d, 10).until(lambda d: "Switch role" in d.page_source and "active-role" not in d.page_source)
        # A role that wants MFA from the last 20 seconds: the sign-in's is
        # older, so the page asks for a code, and a fresh one switches.
        while time.time() - signed_in_at < 21:
            time.sleep(1)
        go(d, "/console/switch-role")
        fill(d, "role", "fresh")
        submit(d, "switch-role")
        refusal = text(d, ".error")
        assert "AccessDenied" in refusal and "enter your MFA code" in refusal, refusal
        while (int(time.time()) + 30) // 30 <= alice_step:
            time.sleep(1)  # a code not used yet (replays are refused)
        fill(d, "role", "fresh")
        fill(d, "mfa-code", totp(users["alice"]["seed"], 30))
        submit(d, "switch-role")
        assert d.current_url.endswith("/console"), d.page_source
        assert "fresh" in text(d, "#active-role"), d.page_source
        click(d, "form[action='/console/switch-back'] button")
        WebDriverWait(d, 10).until(lambda d: "active-role" not in d.page_source)

        # --- a link cannot put its own words on a page ---
        go(d, "/console/users/alice?error=Session%20expired%3A%20sign%20in%20at%20evil.example&done=evil")
        assert "evil.example" not in d.page_source and "evil" not in text(d, "main")

        # --- CSRF: a form posted without its token, or from elsewhere ---
        form = urllib.parse.urlencode({"name": "csrf-victim", "path": "/"}).encode()
        status, _, _ = http("/console/users", alice_cookie, form,
                            {"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 403, status
        token = d.find_element(By.CSS_SELECTOR, "input[name=csrf]").get_attribute("value")
        form = urllib.parse.urlencode({"name": "csrf-victim", "path": "/", "csrf": token}).encode()
        status, _, _ = http("/console/users", alice_cookie, form,
                            {"Content-Type": "application/x-www-form-urlencoded",
                             "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"})
        assert status == 403, status
        sign_out(d)
        # The old cookie is dead on the server.
        status, headers, _ = http("/console/users", alice_cookie)
        assert status == 303 and headers["Location"] == "/console/signin", (status, headers)

        # --- a user whose password must change, refused by the policy ---
        sign_in(d, "newbie", users["newbie"]["password"])
        assert d.current_url.endswith("/console/password"), d.current_url
        check_page(d, "change-password")
        fill(d, "old", users["newbie"]["password"])
        fill(d, "new", "short")
        fill(d, "confirm", "short")
        submit(d, "change-password")
        refusal = text(d, ".error")
        assert "minimum length" in refusal, refusal
        fill(d, "old", users["newbie"]["password"])
        fill(d, "new", users["newbie"]["new_password"])
        fill(d, "confirm", users["newbie"]["new_password"])
        submit(d, "change-password")
        assert d.current_url.split("?")[0].endswith("/console"), d.current_url
        SEEN["policy_refusal"] = refusal

        # --- no permissions: refusals, not data; no MFA: no elevated role ---
        sign_out(d)
        sign_in(d, "nobody", users["nobody"]["password"])
        go(d, "/console/users")
        refused = text(d, ".error")
        assert "AccessDenied" in refused and "made-in-console" not in d.page_source, d.page_source
        check_page(d, "refusal")
        go(d, "/console/users/alice")
        assert "AccessDenied" in text(d, ".error")
        for page in ["/console/databases", "/console/databases/orders", "/console/sessions",
                     "/console/secrets", "/console/parameters", "/console/keys"]:
            go(d, page)
            assert "AccessDenied" in text(d, ".error") and "carol" not in d.page_source, d.page_source
        # Lists and lookups that would show others' names, events or
        # findings: a refusal instead of each.
        for page, secret in [("/console/roles", "elevated"), ("/console/policies", "made-in-console"),
                             ("/console/findings", "failed logins"), ("/console/findings/any", "failed logins"),
                             ("/console/audit", "made-in-console"),
                             ("/console/audit?event-name=CreateUser", "made-in-console")]:
            go(d, page)
            errors = [e.text for e in d.find_elements(By.CSS_SELECTOR, ".error")]
            assert any("AccessDenied" in e for e in errors) and secret not in d.page_source, (page, d.page_source)
        # The simulator's form is there, but simulating another's policies
        # is refused.
        go(d, "/console/simulate")
        principal = d.find_element(By.ID, "principal").get_attribute("placeholder").replace("NAME", "alice")
        fill(d, "principal", principal)
        fill(d, "action", "iam:DeleteUser")
        submit(d, "simulator")
        assert "AccessDenied" in text(d, ".error") and "implicitDeny" not in d.page_source, d.page_source
        status, _, body = http("/console/audit?format=jsonl", session_cookie(d))
        assert status == 403 and "made-in-console" not in body, (status, body[:300])
        # The overview: each panel refused, no counts.
        go(d, "/console")
        assert "AccessDenied" in text(d, ".error") and not d.find_elements(By.CSS_SELECTOR, "dl.counts"), d.page_source
        go(d, "/console/databases/no-such-database")
        assert "AccessDenied" in text(d, ".error"), "refused before existence is told"
        go(d, "/console/switch-role")
        fill(d, "role", "elevated")
        submit(d, "switch-role")
        assert "AccessDenied" in text(d, ".error"), d.page_source
        SEEN["nobody"] = refused
        # An administrator resets the password: the session ends.
        admin(["iam", "update-login-profile", "--user-name", "nobody",
               "--password", users["nobody"]["password"] + "x"])
        go(d, "/console/users")
        assert d.current_url.endswith("/console/signin"), d.current_url

        # --- lockout: five wrong passwords, then the right one is refused ---
        for _ in range(5):
            sign_in(d, "locked", "wrong-Passw0rd!")
        sign_in(d, "locked", users["locked"]["password"])
        lock = text(d, ".error")
        assert "Too many failed sign-in attempts" in lock, lock
        check_page(d, "lockout")
        SEEN["lockout"] = lock
        # A few more guesses at other names: ten failures from this address
        # within a minute, which the brute-force rule reports.
        for name in ["guess-1", "guess-2", "guess-3", "guess-4"]:
            sign_in(d, name, "Guess-Passw0rd!")

        # --- findings and the audit trail, as an auditor ---
        # The keyboard alone: sign in from the focused name field, then
        # the first Tab reaches "Skip to content", which leads into main.
        go(d, "/console/signin")
        assert d.switch_to.active_element.get_attribute("id") == "username"
        ActionChains(d).send_keys("auditor", Keys.TAB, users["auditor"]["password"], Keys.ENTER).perform()
        WebDriverWait(d, 10).until(lambda d: "/console/signin" not in d.current_url)
        ActionChains(d).send_keys(Keys.TAB).perform()
        assert d.switch_to.active_element.get_attribute("class") == "skip", d.switch_to.active_element.text
        ActionChains(d).send_keys(Keys.ENTER).perform()
        assert d.current_url.endswith("#main"), d.current_url
        ActionChains(d).send_keys(Keys.TAB).perform()
        assert d.execute_script("return document.getElementById('main').contains(document.activeElement)")
        SEEN["keyboard"] = True
        deadline = time.time() + 20
        while True:
            go(d, "/console/findings")
            if "failed logins from" in d.page_source or time.time() > deadline:
                break
            time.sleep(0.5)
        assert "failed logins from" in d.page_source, d.page_source
        check_page(d, "findings")
        click(d, "table a[href^='/console/findings/']")
        finding_url = d.current_url
        assert text(d, "#finding-status") == "open"
        evidence = [a.get_attribute("href") for a in d.find_elements(By.CSS_SELECTOR, "#evidence a")]
        assert len(evidence) >= 10, evidence
        check_page(d, "finding")
        d.get(evidence[-1])
        assert "ConsoleLogin" in d.page_source and "signin.amazonaws.com" in d.page_source, d.page_source
        assert text(d, "#trail-status"), "the trail's verification status is shown"
        check_page(d, "audit")
        d.get(finding_url)
        submit(d, "archive-finding")
        assert "Archived." in d.page_source and "failed logins from" not in d.page_source, d.page_source
        go(d, "/console/findings?archived=true")
        assert "failed logins from" in d.page_source
        # Lookup by event name, and the export as JSON lines.
        go(d, "/console/audit?event-name=CreateUser")
        assert "made-in-console" in d.page_source, d.page_source
        status, headers, body = http("/console/audit?event-name=ConsoleLogin&format=jsonl", session_cookie(d))
        assert status == 200 and headers.get("Content-Security-Policy") == CSP, (status, headers)
        lines = [json.loads(line) for line in body.splitlines() if line]
        assert len(lines) >= 10 and all(e["eventName"] == "ConsoleLogin" for e in lines), lines[:2]
        SEEN["audit_export"] = len(lines)
        # Pages of a chosen size, the next one older than the last.
        def shown_ids():
            return [json.loads(p.get_attribute("textContent"))["eventID"]
                    for p in d.find_elements(By.CSS_SELECTOR, "main table tbody pre")]
        go(d, "/console/audit?event-name=ConsoleLogin&max-results=2")
        first = shown_ids()
        assert len(first) == 2, d.page_source
        click(d, "a[rel=next]")
        second = shown_ids()
        assert len(second) == 2 and not set(first) & set(second), (first, second)
        # An export stops at its size and says where the next one starts.
        status, headers, body = http("/console/audit?event-name=ConsoleLogin&max-results=3&format=jsonl",
                                     session_cookie(d))
        page1 = [json.loads(line)["eventID"] for line in body.splitlines() if line]
        link = headers.get("Link", "")
        assert status == 200 and len(page1) == 3 and link.endswith('>; rel="next"'), (status, headers)
        status, _, body = http(link[1:link.index(">")], session_cookie(d))
        page2 = [json.loads(line)["eventID"] for line in body.splitlines() if line]
        assert status == 200 and len(page2) == 3 and not set(page1) & set(page2), (page1, page2)
        # Followed to the end, the pages hold every record once.
        walked, url = [], "/console/audit?event-name=ConsoleLogin&max-results=3&format=jsonl"
        while url:
            status, headers, body = http(url, session_cookie(d))
            assert status == 200, (status, body[:300])
            walked += [json.loads(line)["eventID"] for line in body.splitlines() if line]
            link = headers.get("Link", "")
            url = link[1:link.index(">")] if link else None
        everything = [e["eventID"] for e in lines]
        assert walked == everything, (walked, everything)
        # A time window: nothing before the test began; since a day ago, all.
        go(d, "/console/audit?event-name=ConsoleLogin&until=2020-01-01T00:00:00Z")
        assert "No records match." in d.page_source, d.page_source
        go(d, "/console/audit?event-name=ConsoleLogin&since=1day&max-results=1000")
        assert len(shown_ids()) == len(lines), d.page_source
        go(d, "/console/audit?since=yesterday")
        assert "neither a duration like 1h nor an RFC 3339 time" in text(d, "#lookup-error"), d.page_source
        check_page(d, "audit-bad-filter")
        VISITED.append(BASE + "/console/audit?event-name=CreateUser")

        # --- a password spray from one address: after 20 failures over many
        # names, that address is refused even a right password, which is not
        # checked; the same user from another address signs in ---
        for n in range(20):
            status, _, page = sign_in_from("127.0.0.2", f"spray-{n}", "Spray-Passw0rd!")
            assert status == 401 and INCORRECT in page, (n, status, page[:500])
        status, set_cookie, page = sign_in_from("127.0.0.2", "auditor", users["auditor"]["password"])
        assert "Too many failed sign-in attempts" in page, page[:500]
        assert "latchkey-session" not in set_cookie, set_cookie
        status, set_cookie, page = sign_in_from("127.0.0.3", "auditor", users["auditor"]["password"])
        assert status == 303 and "__Host-latchkey-session=" in set_cookie, (status, set_cookie, page[:300])
        SEEN["address_lockout"] = True

        # --- every response carried the CSP and the framing headers ---
        for url in set(VISITED) | {BASE + "/console/static/console.js", BASE + "/console/signin"}:
            status, headers, _ = http(url)
            assert headers.get("Content-Security-Policy") == CSP, (url, headers)
            assert headers.get("X-Frame-Options") == "DENY", (url, headers)
            assert headers.get("Referrer-Policy"), (url, headers)
        SEEN["csp_checked"] = len(set(VISITED)) + 2
    finally:
        d.quit()
    print(json.dumps(SEEN))


main()
