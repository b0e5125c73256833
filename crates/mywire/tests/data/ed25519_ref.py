# RFC 8032 section 6 reference Ed25519 (pure Python), with MariaDB's twist:
# the expanded key is SHA512(password) for a password of any length.
import hashlib, base64
p = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
def sha512(s): return hashlib.sha512(s).digest()
def modp_inv(x): return pow(x, p-2, p)
d = -121665 * modp_inv(121666) % p
def point_add(P, Q):
    A, B = (P[1]-P[0]) * (Q[1]-Q[0]) % p, (P[1]+P[0]) * (Q[1]+Q[0]) % p
    C, D = 2 * P[3] * Q[3] * d % p, 2 * P[2] * Q[2] % p
    E, F, G, H = B-A, D-C, D+C, B+A
    return (E*F, G*H, F*G, E*H)
def point_mul(s, P):
    Q = (0, 1, 1, 0)
    while s > 0:
        if s & 1: Q = point_add(Q, P)
        P = point_add(P, P); s >>= 1
    return Q
g_y = 4 * modp_inv(5) % p
modp_sqrt_m1 = pow(2, (p-1) // 4, p)
def recover_x(y, sign):
    x2 = (y*y-1) * modp_inv(d*y*y+1)
    if x2 == 0: return 0
    x = pow(x2, (p+3) // 8, p)
    if (x*x - x2) % p != 0: x = x * modp_sqrt_m1 % p
    if x & 1 != sign: x = p - x
    return x
g_x = recover_x(g_y, 0)
G = (g_x, g_y, 1, g_x * g_y % p)
def point_compress(P):
    zinv = modp_inv(P[2]); x = P[0] * zinv % p; y = P[1] * zinv % p
    return int.to_bytes(y | ((x & 1) << 255), 32, "little")
def expand(pw):
    h = sha512(pw)
    a = int.from_bytes(h[:32], "little")
    a &= (1 << 254) - 8; a |= (1 << 254)
    return a, h[32:]
def pub(pw):
    a, _ = expand(pw); return point_compress(point_mul(a, G))
def sign(pw, msg):
    a, prefix = expand(pw)
    A = point_compress(point_mul(a, G))
    r = int.from_bytes(sha512(prefix + msg), "little") % L
    Rs = point_compress(point_mul(r, G))
    h = int.from_bytes(sha512(Rs + A + msg), "little") % L
    s = (r + h * a) % L
    return Rs + int.to_bytes(s, 32, "little")
print(base64.b64encode(pub(b"secret")).decode())
# RFC 8032 test 1 sanity
sk = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
print(pub(sk).hex())
nonce = bytes(range(32))
print("secret", sign(b"secret", nonce).hex())
print("empty", sign(b"", nonce).hex())
tok = (b"rds-token-" * 200)[:1800]
print("token", sign(tok, nonce).hex())
print("pubtok", pub(tok).hex())
