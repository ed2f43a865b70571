"""gRPC server reflection under both names: `grpc.reflection.v1alpha` (what grpcio-reflection ships) and
`grpc.reflection.v1` (what newer clients speak only; they got UNIMPLEMENTED before).

grpcio-reflection 1.85 ships the v1alpha service only. The v1 protocol is the same file under another package: the
same messages with the same field numbers, so the same bytes on the wire. The v1 service is therefore served by the
v1alpha servicer itself, its messages read and written with the v1alpha classes, and a v1 copy of the descriptor
(package renamed) is added to the descriptor pool so that reflection can describe the v1 service as well.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_reflection.v1alpha import reflection, reflection_pb2

V1ALPHA_SERVICE_NAME: str = reflection.SERVICE_NAME  # grpc.reflection.v1alpha.ServerReflection
V1_PACKAGE = "grpc.reflection.v1"
V1_SERVICE_NAME = f"{V1_PACKAGE}.ServerReflection"
V1_FILE_NAME = "grpc/reflection/v1/reflection.proto"
_V1ALPHA_PACKAGE = reflection_pb2.DESCRIPTOR.package


def _v1_file_descriptor() -> Any:
    """The v1 reflection file in the default pool (added once: v1alpha's, with its package renamed)."""
    pool = descriptor_pool.Default()
    try:
        return pool.FindFileByName(V1_FILE_NAME)
    except KeyError:
        pass
    proto = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(proto)
    proto.name = V1_FILE_NAME
    proto.package = V1_PACKAGE
    proto.options.Clear()
    old, new = f".{_V1ALPHA_PACKAGE}.", f".{V1_PACKAGE}."
    for message in proto.message_type:
        for field in message.field:
            if field.type_name.startswith(old):
                field.type_name = new + field.type_name[len(old) :]
    for service in proto.service:
        for method in service.method:
            method.input_type = new + method.input_type[len(old) :]
            method.output_type = new + method.output_type[len(old) :]
    pool.Add(proto)
    return pool.FindFileByName(V1_FILE_NAME)


def v1_message_class(name: str) -> Any:
    """A message class of the v1 protocol (`ServerReflectionRequest`, ...), e.g. for a v1-only client."""
    _v1_file_descriptor()
    return message_factory.GetMessageClass(
        descriptor_pool.Default().FindMessageTypeByName(f"{V1_PACKAGE}.{name}")
    )


def enable_server_reflection(service_names: Iterable[str], server: grpc.aio.Server) -> None:
    """Serve reflection of `service_names` (and of both reflection services) under v1alpha and v1."""
    _v1_file_descriptor()
    names = (*service_names, V1ALPHA_SERVICE_NAME, V1_SERVICE_NAME)
    reflection.enable_server_reflection(names, server)
    servicer = reflection.aio.ReflectionServicer(names)
    handlers = {
        "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
            servicer.ServerReflectionInfo,
            request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
            response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
        )
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(V1_SERVICE_NAME, handlers),))
