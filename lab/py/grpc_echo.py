"""A gRPC service and client for the lab (grpcio, no generated code: the
messages are raw bytes). /lab.Echo/Say and /lab.Echo/Limited answer OK when
the call carries `authorization: Bearer good`, UNAUTHENTICATED otherwise; the
gateway rate-limits /lab.Echo/Limited.

    python3 grpc_echo.py serve ADDR:PORT
    python3 grpc_echo.py call TARGET METHOD TOKEN N
        N unary calls over one HTTP/2 connection; prints the status codes
        counted, e.g. {'OK': 5, 'UNAUTHENTICATED': 30}.
"""

import sys
from concurrent import futures

import grpc


def handler(request, context):
    metadata = dict(context.invocation_metadata())
    if metadata.get("authorization") != "Bearer good":
        context.abort(grpc.StatusCode.UNAUTHENTICATED, "bad token")
    return request


def serve(addr):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    methods = {
        "Say": grpc.unary_unary_rpc_method_handler(handler),
        "Limited": grpc.unary_unary_rpc_method_handler(handler),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("lab.Echo", methods),))
    server.add_insecure_port(addr)
    server.start()
    print("serving", flush=True)
    server.wait_for_termination()


def call(target, method, token, n):
    channel = grpc.insecure_channel(target)
    rpc = channel.unary_unary(f"/lab.Echo/{method}")
    codes = {}
    for _ in range(int(n)):
        try:
            rpc(b"hi", metadata=(("authorization", f"Bearer {token}"),), timeout=5)
            code = "OK"
        except grpc.RpcError as e:
            code = e.code().name
        codes[code] = codes.get(code, 0) + 1
    print(codes, flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2])
    elif sys.argv[1] == "call":
        call(*sys.argv[2:6])
    else:
        sys.exit(f"unknown mode {sys.argv[1]}")
