"""Odd but valid, and hostile, HTTP requests for the differential test
against the lab gateway's access log (sensor/tests/live_differential.rs).

    python3 requests.py odd HOST PORT
        Requests nginx accepts but a naive sensor loses, each on its own
        connection, written with plain sockets (TCP_NODELAY, one write per
        piece, so each piece is its own segment): tiny and one-byte
        segments, a request line split after the method, many headers,
        bytes >= 0x80 in the target, pipelining, absolute-form, bare LF.

    python3 requests.py hold HOST PORT N SECONDS
        N connections, each sending a request head of seven 4000-byte
        header lines that never ends (nginx keeps waiting: each line is
        under its 8k buffers), held open for SECONDS: the memory budget's
        live worst case.

    python3 requests.py hostile SRC DST PORT IFACE VICTIM
        Segment-level tricks with scapy, from address SRC on IFACE (the
        caller drops this host's own RSTs): an insertion with a bad TCP
        checksum before the real request, an overlap whose two copies
        differ, a request in IPv4 fragments, and forged segments from
        VICTIM without a handshake.

    python3 requests.py raw SRC HOST PORT FILE...
        Each FILE's bytes sent as they are on a connection of its own from
        address SRC: requests no HTTP client would write (control bytes in
        header values, no Host, hostile encodings), for the output tests.

Each case prints one line: `case NAME`. Nothing here checks anything; the
Rust test compares nginx's log with the sensor's transactions.
"""

import socket
import sys
import time


def send_pieces(host, port, pieces, pause=0.005, src=None):
    source = (src, 0) if src else None
    s = socket.create_connection((host, int(port)), source_address=source)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for p in pieces:
        s.sendall(p)
        time.sleep(pause)
    s.settimeout(5)
    try:
        while s.recv(65536):
            pass
    except OSError:
        pass
    s.close()


def odd(host, port):
    close = b"Connection: close\r\n"
    simple = b"GET /hello?case=tiny HTTP/1.1\r\nHost: gw\r\n" + close + b"\r\n"
    cases = {
        "tiny-segments": [simple[i:i + 5] for i in range(0, len(simple), 5)],
        "one-byte-segments": [bytes([b]) for b in simple.replace(b"tiny", b"bytes")],
        "method-alone": [b"GET", b" /hello?case=method HTTP/1.1\r\nHost: gw\r\n" + close + b"\r\n"],
        "many-headers": [b"GET /hello?case=headers HTTP/1.1\r\nHost: gw\r\n"
                         + b"".join(b"X-Filler-%d: %d\r\n" % (i, i) for i in range(150))
                         + close + b"\r\n"],
        "high-bytes": [b"GET /hello?case=high&q=\xff\xfe&caf\xe9 HTTP/1.1\r\nHost: gw\r\n" + close + b"\r\n"],
        "pipelined": [b"GET /hello?case=pipe1 HTTP/1.1\r\nHost: gw\r\n\r\n"
                      b"GET /missing?case=pipe2 HTTP/1.1\r\nHost: gw\r\n\r\n"
                      b"GET /hello?case=pipe3 HTTP/1.1\r\nHost: gw\r\n" + close + b"\r\n"],
        "absolute-form": [b"GET http://gw:8000/hello?case=absolute HTTP/1.1\r\nHost: gw\r\n" + close + b"\r\n"],
        "bare-lf": [b"GET /hello?case=lf HTTP/1.1\nHost: gw\n" + close.replace(b"\r", b"") + b"\n"],
        "encoded-decoy": [b"GET /%61dmin/../hello?case=encoded HTTP/1.1\r\nHost: gw\r\n" + close + b"\r\n"],
    }
    for name, pieces in cases.items():
        print("case", name, flush=True)
        send_pieces(host, port, pieces)


def hold(host, port, n, seconds):
    import resource
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    head = b"GET /slow HTTP/1.1\r\nHost: gw\r\n" + b"".join(
        b"X-Pad-%d: %s\r\n" % (i, b"a" * 4000) for i in range(7))
    held = []
    for _ in range(int(n)):
        s = socket.create_connection((host, int(port)))
        s.sendall(head)
        held.append(s)
    print("held", len(held), flush=True)
    time.sleep(float(seconds))
    for s in held:
        s.close()


def hostile(src, dst, port, iface, victim):
    from scapy.all import IP, TCP, conf, fragment, send, sr1
    conf.verb = 0
    port = int(port)

    def connect(sport):
        syn = IP(src=src, dst=dst) / TCP(sport=sport, dport=port, flags="S", seq=1000)
        synack = sr1(syn, timeout=2, iface=iface)
        ack = synack[TCP].seq + 1
        send(IP(src=src, dst=dst) / TCP(sport=sport, dport=port, flags="A", seq=1001, ack=ack), iface=iface)
        return ack

    def segment(sport, ack, data, seq=1001, chksum=None):
        tcp = TCP(sport=sport, dport=port, flags="PA", seq=seq, ack=ack)
        if chksum is not None:
            tcp.chksum = chksum
        send(IP(src=src, dst=dst) / tcp / data, iface=iface)

    def finish(sport, ack, seq):
        time.sleep(0.3)
        send(IP(src=src, dst=dst) / TCP(sport=sport, dport=port, flags="R", seq=seq, ack=ack), iface=iface)

    real = b"GET /hello?case=inserted-real HTTP/1.1\r\nHost: gw\r\n\r\n"
    fake = b"GET /admin/x?case=inserted-fake HTTP/1.1\r\nHost: gw\r\n\r\n"[:len(real)]
    print("case bad-checksum-insertion", flush=True)
    ack = connect(41001)
    segment(41001, ack, fake, chksum=0x1234)
    segment(41001, ack, real)
    finish(41001, ack, 1001 + len(real))

    first = b"GET /hello?case=overlap-first HTTP/1.1\r\nHost: gw\r\n\r\n"
    second = b"GET /admin/?case=overlap-second HTTP/1.1\r\nHost: gw\r\n\r\n"[:len(first)]
    print("case overlap-different-data", flush=True)
    ack = connect(41002)
    segment(41002, ack, first)
    segment(41002, ack, second)
    finish(41002, ack, 1001 + len(first))

    print("case ip-fragments", flush=True)
    ack = connect(41003)
    request = b"GET /hello?case=fragments HTTP/1.1\r\nHost: gw\r\n\r\n"
    packet = IP(src=src, dst=dst) / TCP(sport=41003, dport=port, flags="PA", seq=1001, ack=ack) / request
    send(fragment(packet, fragsize=16), iface=iface)
    finish(41003, ack, 1001 + len(request))

    print("case forged-no-handshake", flush=True)
    for i in range(3):
        send(IP(src=victim, dst=dst) / TCP(sport=42000 + i, dport=port, flags="PA", seq=1, ack=1)
             / b"GET /admin/login HTTP/1.1\r\nHost: gw\r\n\r\n", iface=iface)


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "odd":
        odd(*sys.argv[2:4])
    elif mode == "hold":
        hold(*sys.argv[2:6])
    elif mode == "hostile":
        hostile(*sys.argv[2:7])
    elif mode == "raw":
        src, host, port = sys.argv[2:5]
        for path in sys.argv[5:]:
            print("case", path, flush=True)
            with open(path, "rb") as f:
                send_pieces(host, port, [f.read()], src=src)
    else:
        sys.exit(f"unknown mode {mode}")
