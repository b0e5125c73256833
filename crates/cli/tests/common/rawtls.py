# A TLS client driven by hand through memory BIOs, for tests that must
# write without reading, or read while they write, on one thread (an
# ssl.SSLSocket cannot be read on one thread while written on another).
import os, select, ssl, time


class RawTls:
    """TLS over `sock`, whose protocol has already asked for it."""

    def __init__(self, sock, host, cafile):
        self.sock = sock
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = ssl.create_default_context(cafile=cafile).wrap_bio(
            self.incoming, self.outgoing, server_hostname=host)
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                sock.sendall(self.outgoing.read())
                data = sock.recv(65536)
                if not data:
                    raise EOFError("closed during the TLS handshake")
                self.incoming.write(data)
        sock.setblocking(False)
        self.unsent = bytearray(self.outgoing.read())
        # Plaintext received and not yet taken by the caller.
        self.plain = bytearray()

    def write(self, data):
        self.tls.write(data)
        self.unsent.extend(self.outgoing.read())

    def send_some(self, wait):
        """Sends what the socket takes within `wait` seconds."""
        if self.unsent and select.select([], [self.sock], [], wait)[1]:
            try:
                del self.unsent[:self.sock.send(self.unsent)]
            except BlockingIOError:
                pass

    def pump(self):
        """Sends what it can and reads what came into `plain`."""
        readable, writable, _ = select.select(
            [self.sock], [self.sock] if self.unsent else [], [], 0.05)
        if writable:
            self.send_some(0)
        if readable:
            data = self.sock.recv(1 << 20)
            if not data:
                raise EOFError("the gateway closed the connection")
            self.incoming.write(data)
            while True:
                try:
                    chunk = self.tls.read(1 << 20)
                except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                    break
                # Empty once the peer has closed TLS (close_notify).
                if not chunk:
                    break
                self.plain += chunk

    def until(self, done, take, seconds=60):
        """Pumps until `done()`, handing what came to `take(plain)`."""
        deadline = time.time() + seconds
        while not done():
            if time.time() > deadline:
                raise TimeoutError(f"waited {seconds} s")
            self.pump()
            take(self.plain)

    def flood(self, batch, per_batch, most):
        """Writes `batch` (`per_batch` requests) again and again without
        reading an answer, until `most` requests are written or the peer
        has taken nothing for two seconds; how many were written."""
        written, stalled = 0, time.time()
        while written < most and time.time() - stalled < 2:
            if len(self.unsent) < 1 << 20:
                self.write(batch)
                written += per_batch
            left = len(self.unsent)
            self.send_some(0.05)
            if len(self.unsent) < left:
                stalled = time.time()
        return written


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))

