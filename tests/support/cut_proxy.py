#!/usr/bin/env python3
"""A loopback TCP proxy the bindings' tests can cut, to make a backend
unreachable on demand (a release that fails transiently, then succeeds).

Usage: cut_proxy.py TARGET_HOST:PORT

Listens on a free 127.0.0.1 port and prints `listening 127.0.0.1:PORT` on
stdout (flushed) once it accepts connections. Then reads commands, one per
line, on stdin, and answers each with `ok <command>` once it took effect:

- `cut`: closes every proxied connection and refuses new ones (they are
  accepted and closed at once), so calls fail fast with a connection error;
- `restore`: forwards new connections again;
- `quit`, or end of stdin: stops.

Plain threads, no dependencies; every socket has a bounded timeout.
"""

import socket
import sys
import threading

CONNECT_TIMEOUT = 5.0


class Proxy:
    def __init__(self, target):
        host, _, port = target.rpartition(":")
        self.target = (host or "127.0.0.1", int(port))
        self.lock = threading.Lock()
        self.cut = False
        self.sockets = set()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)

    def address(self):
        host, port = self.listener.getsockname()
        return f"{host}:{port}"

    def serve(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                refuse = self.cut
            if refuse:
                client.close()
                continue
            threading.Thread(target=self.forward, args=(client,), daemon=True).start()

    def forward(self, client):
        try:
            upstream = socket.create_connection(self.target, timeout=CONNECT_TIMEOUT)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        with self.lock:
            if self.cut:
                client.close()
                upstream.close()
                return
            self.sockets.update((client, upstream))
        threading.Thread(target=self.pump, args=(upstream, client), daemon=True).start()
        self.pump(client, upstream)

    def pump(self, source, sink):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                self.close(sock)

    def close(self, sock):
        with self.lock:
            self.sockets.discard(sock)
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()

    def set_cut(self, cut):
        with self.lock:
            self.cut = cut
            victims = list(self.sockets) if cut else []
        for sock in victims:
            self.close(sock)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: cut_proxy.py TARGET_HOST:PORT")
    proxy = Proxy(sys.argv[1])
    threading.Thread(target=proxy.serve, daemon=True).start()
    print(f"listening {proxy.address()}", flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "cut":
            proxy.set_cut(True)
        elif command == "restore":
            proxy.set_cut(False)
        elif command == "quit":
            break
        elif command:
            print(f"error unknown command {command!r}", flush=True)
            continue
        else:
            continue
        print(f"ok {command}", flush=True)
    proxy.listener.close()


if __name__ == "__main__":
    main()
