"""OTLP trace receivers, real servers on 127.0.0.1 decoding with opentelemetry-proto: one for
OTLP/HTTP (protobuf), one for OTLP/gRPC. Both collect (service name, span) pairs."""

from __future__ import annotations

import gzip
from concurrent import futures
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fakes.server import ServedApp, free_port


def _collect(message: Any, into: list[Any]) -> None:
    for resource in message.resource_spans:
        attributes = {a.key: a.value.string_value for a in resource.resource.attributes}
        for scope in resource.scope_spans:
            for span in scope.spans:
                into.append((attributes.get("service.name"), span))


class OtlpHttpReceiver(ServedApp):
    def __init__(self) -> None:
        self.spans: list[Any] = []

        async def traces(request: Request) -> Response:
            raw = await request.body()
            if request.headers.get("content-encoding") == "gzip":
                raw = gzip.decompress(raw)
            message = trace_service_pb2.ExportTraceServiceRequest()
            message.ParseFromString(raw)
            _collect(message, self.spans)
            return Response(b"", media_type="application/x-protobuf")

        self.app = Starlette(routes=[Route("/v1/traces", traces, methods=["POST"])])

    @property
    def endpoint(self) -> str:
        return self.server_url


class OtlpGrpcReceiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.spans: list[Any] = []
        port = free_port()
        self.endpoint = f"http://127.0.0.1:{port}"
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self._server)
        self._server.add_insecure_port(f"127.0.0.1:{port}")

    def Export(self, request: Any, context: Any) -> Any:
        _collect(request, self.spans)
        return trace_service_pb2.ExportTraceServiceResponse()

    def __enter__(self) -> OtlpGrpcReceiver:
        self._server.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.stop(grace=None)
