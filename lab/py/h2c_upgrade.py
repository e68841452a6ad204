"""An HTTP/2 server reached by `Upgrade: h2c` (RFC 7540 section 3.2; nginx
and Debian's nghttpd have no h2c upgrade), built on hyper-h2 (Debian's
python3-h2). It answers 101, then every stream, the upgraded request (stream
1) included, with 200 and `hello over h2c`; stream 1's answer shares the
101's segment.

    python3 h2c_upgrade.py ADDR PORT
"""

import socket
import sys

import h2.config
import h2.connection
import h2.events

BODY = b"hello over h2c\n"


def respond(conn, stream):
    conn.send_headers(stream, [(":status", "200"), ("content-length", str(len(BODY)))])
    conn.send_data(stream, BODY, end_stream=True)


def handle(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65535)
        if not chunk:
            return
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    settings = next(
        line.split(b":", 1)[1].strip()
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"http2-settings:")
    )
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    conn.initiate_upgrade_connection(settings)
    respond(conn, 1)
    # The server's frames need not wait for the client's preface (RFC 7540
    # section 3.2): sent with the 101, in its segment.
    switching = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
    sock.sendall(switching + conn.data_to_send())
    while True:
        if not rest:
            rest = sock.recv(65535)
            if not rest:
                return
        events = conn.receive_data(rest)
        rest = b""
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                respond(conn, event.stream_id)
            elif isinstance(event, h2.events.ConnectionTerminated):
                sock.sendall(conn.data_to_send())
                return
        sock.sendall(conn.data_to_send())


def main(addr, port):
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((addr, int(port)))
    server.listen()
    print("serving", flush=True)
    while True:
        sock, _ = server.accept()
        try:
            handle(sock)
        finally:
            sock.close()


if __name__ == "__main__":
    main(*sys.argv[1:3])
